"""Show what a trained model predicts for each [MASK] in a sentence.

Usage:
    python -m bertmodel.fill_mask --model_dir=runs/sample/model \
        --text="대한민국은 민주[MASK]국이다." --top_k=5
    echo "모든 국민은 [MASK]의 자유를 가진다." | python -m bertmodel.fill_mask \
        --model_dir=runs/sample/model

Reads MODEL_DIR/model.keras and MODEL_DIR/tokenizer.model (both written by bertmodel.train).
The text is laid out as one segment, [CLS] text [SEP]; special pieces are never proposed,
and the probabilities are those among the ordinary pieces: the export's fill_mask signature
gives the same answers.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

import bertmodel
from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertdata.tokenizer_files import FAST_FILE, SENTENCEPIECE_FILE, load_tokenizer
from bertmodel.export.saved_model import top_pieces


def load(model_dir: str):
    """(model, tokenizer) from a training run's directory; errors name the file."""
    if not any(os.path.isfile(os.path.join(model_dir, name))
               for name in (SENTENCEPIECE_FILE, FAST_FILE)):
        raise FileNotFoundError(f"{model_dir} holds no {SENTENCEPIECE_FILE} or {FAST_FILE}: "
                                "is it a bertmodel.train output directory?")
    tokenizer = load_tokenizer(model_dir)
    model = bertmodel.load_pretrainer(os.path.join(model_dir, "model.keras"))
    return model, tokenizer


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (piece, probability) for each [MASK] in text, in order of appearance."""
    import tensorflow as tf

    special = tokenizer.special
    ordinary = tokenizer.vocab_size - int(tokenizer.is_special.sum())
    if not 1 <= top_k <= ordinary:
        raise ValueError(f"--top_k must be between 1 and {ordinary} (the ordinary pieces), "
                         f"got {top_k}")
    ids = [special.cls] + tokenizer.encode_line(text) + [special.sep]
    max_len = model.backbone.config.max_position_embeddings
    if len(ids) > max_len:
        raise ValueError(f"text is {len(ids)} pieces long; the model takes at most {max_len}")
    positions = [i for i, t in enumerate(ids) if t == special.mask]
    if not positions:
        raise ValueError("the text holds no [MASK]")
    inputs = {
        "input_ids": tf.constant([ids], tf.int32),
        "input_mask": tf.ones([1, len(ids)], tf.int32),
        "segment_ids": tf.zeros([1, len(ids)], tf.int32),
        "masked_lm_positions": tf.constant([positions], tf.int32),
    }
    logits = model.serving_outputs(inputs)["mlm_logits"]  # (1, masks, vocab)
    scores, best = top_pieces(logits, top_k, tf.constant(tokenizer.is_special))
    return [[(tokenizer.id_to_piece(i), float(p)) for i, p in zip(row_ids, row_scores,
                                                                 strict=True)]
            for row_ids, row_scores in zip(np.asarray(best[0]), np.asarray(scores[0]),
                                           strict=True)]


@dataclasses.dataclass(frozen=True)
class FillMaskSettings(cli.Settings):
    model_dir: str = cli.flag(help="a bertmodel.train output directory")
    text: str | None = cli.flag(None, help="default: one sentence per line on stdin")
    top_k: int = cli.flag(5, check=cli.at_least(1))


def _command(settings: FillMaskSettings) -> int:
    try:
        model, tok = load(settings.model_dir)
    except (OSError, ValueError) as e:
        raise BertpipeError(str(e)) from None
    # Bytes, decoded line by line: a line that is not UTF-8 fails alone.
    lines = [settings.text.encode("utf-8", "surrogateescape")] if settings.text is not None \
        else [line for line in sys.stdin.buffer.read().splitlines() if line.strip()]
    status = 0
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            print(f"  error: not UTF-8 text: {line[:40]!r}", file=sys.stderr)
            status = 2
            continue
        print(text)
        try:
            results = fill_mask(model, tok, text, settings.top_k)
        except ValueError as e:  # this sentence only; the others are still answered
            print(f"  error: {e}", file=sys.stderr)
            status = 2
            continue
        for n, candidates in enumerate(results, 1):
            shown = "  ".join(f"{piece} {prob:.4f}" for piece, prob in candidates)
            print(f"  [MASK] {n}: {shown}")
    return status


def main(argv=None) -> int:
    return cli.run_command(FillMaskSettings, _command, argv,
                           description="Top-k pieces for each [MASK] in a sentence.")


if __name__ == "__main__":
    sys.exit(main())
