"""Fine-tune a pretrained encoder to classify sentences or sentence pairs.

Usage:
    python -m bertmodel.finetune --model_dir=runs/sample/model --train=train.tsv \
        --eval=dev.tsv --output_dir=runs/classifier [--epochs=5 --batch_size=32 \
        --learning_rate=2e-4 --max_seq_length=128 --from_scratch]

TSV files, UTF-8: `label<TAB>text` for single sentences, `label<TAB>text_a<TAB>text_b`
for pairs (a first row whose first column is `label` is a header and skipped; a byte-order
mark is ignored); every line of a file has the same number of columns. Labels are any
strings; their sorted list is saved with the model. Blank lines are skipped and counted;
any other malformed line is an error naming the file and line.

--model_dir is a bertmodel.train output (encoder.keras and its tokenizer) or a Hugging Face
BERT folder: one bertmodel.export_hf wrote, or a published checkpoint with a WordPiece
tokenizer.json (klue/bert-base, multilingual BERT, KcBERT; docs/published-models.md); a
tokenizer with no in-graph counterpart (BPE, Unigram) is refused in one line. --from_scratch
trains the same architecture from random weights with the same budget, to see what
pretraining brought. Text goes through the in-graph preprocessor (bertmodel.model.preprocessing),
inside the tf.data pipeline. Schedule: linear warm-up over the first 10% of the steps
(--warmup_percent), then cosine decay; AdamW. After each epoch the eval set is scored
(accuracy and macro-F1); the weights of the best epoch by accuracy are kept, and training
stops after --patience epochs without a better one. Beside the results it prints a
bag-of-words baseline on the same split (bertmodel.tasks.bag_of_words: Naive Bayes on character
n-grams), so a user sees at once whether the BERT is worth its cost.

Writes OUT/classifier.keras, OUT/labels.json, the tokenizer's files, OUT/results.json and
OUT/export, a SavedModel whose `classify` signature takes `text` strings (`classify_pair`
takes `text` and `text_b`) and returns `probabilities` (batch x labels) and `label`. Prints
one line per epoch, then one JSON line with the results. OUT is checked before training (a
non-empty one needs --overwrite), written under a temporary name and renamed when complete.
"""

import json
import sys

from bertcommon import cli
from bertmodel.tasks.classifier import FinetuneSettings, finetune

DESCRIPTION = "Fine-tune a pretrained encoder to classify text."


def _command(config: FinetuneSettings) -> None:
    print(json.dumps(finetune(config)))


def main(argv=None) -> int:
    return cli.run_command(FinetuneSettings, _command, argv, description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
