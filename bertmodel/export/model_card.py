"""The README.md of a Hugging Face export: what the model is, how it was made, how to load it,
written from the run's own files (config.json, data_metadata.json, history.json,
results.json)."""

from __future__ import annotations

from bertdata.schema import DatasetMetadata
from bertdata.tokenizer_files import SENTENCEPIECE
from bertmodel.model.config import BertConfig

_LOAD = {
    "BertForPreTraining": ("AutoModelForMaskedLM", "fill-mask"),
    "BertForMaskedLM": ("AutoModelForMaskedLM", "fill-mask"),
    "BertForSequenceClassification": ("AutoModelForSequenceClassification",
                                      "text-classification"),
    "ElectraForPreTraining": ("AutoModel", "feature-extraction"),
    "ElectraForMaskedLM": ("AutoModelForMaskedLM", "fill-mask"),
}


def _last(history: dict, key: str):
    values = history.get(key) or []
    return values[-1] if values else None


def _training_lines(facts: dict, tokenizer_kind: str) -> list[str]:
    training = facts.get("config", {}).get("training", {})
    data: DatasetMetadata | None = facts.get("data")
    lines = []
    if data is not None:
        examples = {name: s.num_examples for name, s in data.splits.items()}
        lines.append(f"- Data: bertpipe's Beam job, {examples} examples of at most "
                     f"{data.max_seq_length} pieces; next-sentence mode `{data.nsp_mode}`, "
                     f"{data.masking} masking at {data.masked_lm_prob} (at most "
                     f"{data.max_predictions_per_seq} per example), dupe factor "
                     f"{data.dupe_factor}, seed {data.seed}.")
        kind = "SentencePiece BPE" if tokenizer_kind == SENTENCEPIECE else \
            "the published checkpoint's own tokenizer.json"
        lines.append(f"- Tokenizer: {kind}, {data.vocab_size} pieces "
                     f"(sha256 {data.tokenizer.sha256[:16]}…).")
    steps = training.get("total_steps")
    batch = training.get("effective_batch_size")
    if steps and batch:
        tokens = steps * batch * (data.max_seq_length if data else 0)
        lines.append(f"- Pretraining: {steps:,} steps of {batch} sequences "
                     f"(at most {tokens:,} tokens seen), peak learning rate "
                     f"{training.get('learning_rate')}, precision "
                     f"{training.get('precision')}, {training.get('replicas')} replica(s).")
    history = facts.get("history", {})
    figures = {k: _last(history, k) for k in ("val_mlm_accuracy", "val_nsp_accuracy",
                                              "val_mlm_loss", "mlm_accuracy")}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if v is not None)
    if shown:
        lines.append(f"- Final figures (last epoch): {shown}.")
    results = facts.get("results", {})
    if results:
        lines.append(f"- Fine-tuned: eval accuracy {results.get('eval_accuracy')}, macro-F1 "
                     f"{results.get('eval_macro_f1')} on {results.get('eval_examples')} "
                     f"examples ({results.get('train_examples')} training examples).")
    return lines


def model_card(architecture: str, config: BertConfig, facts: dict, labels=None,
               tokenizer_kind: str = SENTENCEPIECE) -> str:
    """The card's Markdown; TOKENIZER_KIND: bertdata.tokenizer_files.SENTENCEPIECE (this
    project's) or FAST (a published checkpoint's tokenizer.json)."""
    own = tokenizer_kind == SENTENCEPIECE
    auto, task = _LOAD.get(architecture, ("AutoModel", "feature-extraction"))
    sizes = (f"{config.num_layers} layers, hidden size {config.hidden_size}, "
             f"{config.num_heads} heads, feed-forward {config.intermediate_size}, "
             f"{config.max_position_embeddings} positions, {config.vocab_size} pieces")
    label_line = [f"- Labels: {', '.join(map(str, labels))}."] if labels else []
    family = "ELECTRA" if architecture.startswith("Electra") else "BERT"
    return "\n".join([
        "---", "language: ko", "library_name: transformers", f"pipeline_tag: {task}",
        f"tags: [{family.lower()}, bertpipe]", "---", "",
        f"# A Korean {family} ({architecture}) trained with bertpipe", "",
        f"A post-LN {family} ({sizes}) " + ("pretrained from scratch with bertpipe (SentencePiece, "
                                         "an Apache Beam data job, Keras)" if own else
                                         "trained further with bertpipe from a published "
                                         "checkpoint (an Apache Beam data job, Keras)")
        + f", exported to transformers' {family} layout.", "",
        "## How it was made", "", *_training_lines(facts, tokenizer_kind), *label_line, "",
        "## Use it", "", "```python",
        f"from transformers import AutoTokenizer, {auto}, pipeline",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        f"model = {auto}.from_pretrained(PATH)",
        f'print(pipeline("{task}", model=model, tokenizer=tokenizer)('
        + ('"대한민국은 민주[MASK]국이다."' if task == "fill-mask" else '"좋은 영화였다"') + "))",
        "```", "",
        ("The tokenizer gives the ids of the SentencePiece model it was trained with "
         "(`tokenizer.model`, also in this folder)" if own else
         "The tokenizer files are the source checkpoint's, unchanged")
        + ": bertpipe's tests check its ids, and the model's outputs, against bertpipe's "
        "own in transformers itself. Pairs are laid out "
        "`[CLS] A [SEP] B [SEP]`, segment 0 up to the first [SEP]; next-sentence label 0 "
        "means B follows A.", ""])
