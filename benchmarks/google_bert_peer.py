"""google-research/bert's create_pretraining_data.py, run as its users run it, and timed.

Usage (needs the `benchmark` extra: its code is on PyPI as bert-tensorflow 1.0.4):
    python -m benchmarks.google_bert_peer --spm_model=ko.model --input_file=corpus.txt \
        --output_file=/tmp/peer.tfrecord --dupe_factor=1

Its WordPiece tokenizer reads a vocab.txt; this writes one from the SentencePiece model, so
both tools cut text with the same vocabulary: a piece starting with '▁' is a word-initial
WordPiece token, any other piece a '##' continuation, and the special pieces keep their
names. Then it runs the script's own main() with its own flags (max_seq_length 128, 20
predictions, masked_lm_prob 0.15, short_seq_prob 0.1 and the given dupe_factor;
do_lower_case=False, because lower-casing applies NFD, which takes Hangul syllables apart).

Prints one JSON line: examples written, seconds of processing (from after the imports to the
end of main), and seconds since the process started.
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the imports: the process's own start-up is part of its cost

import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from bertcommon import cli  # noqa: E402
from bertdata.wire_format import count_framed_records  # noqa: E402


@dataclasses.dataclass(frozen=True)
class PeerSettings(cli.Settings):
    spm_model: str = cli.flag(help="the SentencePiece model whose pieces become a vocab.txt")
    input_file: str = cli.flag(help="the corpus, one sentence per line")
    output_file: str = cli.flag(help="the peer's TFRecord file")
    dupe_factor: int = cli.flag(10, check=cli.positive)
    short_seq_prob: float = cli.flag(0.1, check=cli.between(0.0, 1.0, high_included=True))


def write_wordpiece_vocab(spm_model: str, path: str) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            if i < 7:
                f.write(piece + "\n")  # [PAD] [UNK] [BOS] [EOS] [SEP] [CLS] [MASK]
            elif piece.startswith("\u2581"):
                f.write((piece[1:] or "\u2581") + "\n")
            else:
                f.write("##" + piece + "\n")


def run_peer(args: PeerSettings) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow.compat.v1 as tf
    from bert import create_pretraining_data as peer

    vocab = args.output_file + ".vocab.txt"
    write_wordpiece_vocab(args.spm_model, vocab)
    tf.logging.set_verbosity(tf.logging.ERROR)
    peer.FLAGS([sys.argv[0], f"--input_file={args.input_file}",
                f"--output_file={args.output_file}", f"--vocab_file={vocab}",
                "--do_lower_case=False", "--max_seq_length=128",
                "--max_predictions_per_seq=20", "--masked_lm_prob=0.15", "--random_seed=12345",
                f"--dupe_factor={args.dupe_factor}", f"--short_seq_prob={args.short_seq_prob}"])
    start = time.time()
    peer.tf.logging.set_verbosity(tf.logging.ERROR)
    peer.main(None)
    seconds = time.time() - start
    with open(args.output_file, "rb") as f:
        examples = count_framed_records(f.read())
    print(json.dumps({"examples": examples, "seconds": round(seconds, 3),
                      "process_seconds": round(time.time() - STARTED, 3)}))
    return 0


def main(argv=None) -> int:
    return cli.run_command(PeerSettings, run_peer, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
