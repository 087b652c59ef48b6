"""Show what a trained model predicts for each [MASK] in a sentence.

Usage:
    python -m bertmodel.fill_mask --model_dir=runs/sample/model \
        --text="대한민국은 민주[MASK]국이다." --top_k=5
    echo "모든 국민은 [MASK]의 자유를 가진다." | python -m bertmodel.fill_mask \
        --model_dir=runs/sample/model

Reads MODEL_DIR/model.keras and MODEL_DIR/tokenizer.model (both written by bertmodel.train).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def load(model_dir: str):
    """(model, tokenizer) from a training run's directory."""
    import tensorflow as tf

    import bertmodel.model  # noqa: F401  (registers the custom layers for loading)
    from bertdata.tokenizer import Tokenizer

    model_path = os.path.join(model_dir, "model.keras")
    tok_path = os.path.join(model_dir, "tokenizer.model")
    for path in (model_path, tok_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: is {model_dir} a bertmodel.train "
                                    "output directory?")
    return tf.keras.models.load_model(model_path), Tokenizer.load(tok_path)


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (piece, probability) for each [MASK] in text, in order of appearance."""
    import tensorflow as tf

    special = tokenizer.special
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
    logits = model(inputs, training=False)["mlm_logits"][0].numpy()  # (masks, vocab)
    logits[:, tokenizer.is_special] = -np.inf  # never propose a special piece
    out = []
    for row in logits:
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        best = np.argsort(-probs)[:top_k]
        out.append([(tokenizer.id_to_piece(i), float(probs[i])) for i in best])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Top-k pieces for each [MASK] in a sentence.")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--text", default=None, help="default: one sentence per line on stdin")
    p.add_argument("--top_k", type=int, default=5)
    args = p.parse_args(argv)
    try:
        model, tok = load(args.model_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    texts = [args.text] if args.text is not None else [t for t in sys.stdin.read().splitlines()
                                                        if t.strip()]
    status = 0
    for text in texts:
        print(text)
        try:
            results = fill_mask(model, tok, text, args.top_k)
        except ValueError as e:
            print(f"  error: {e}", file=sys.stderr)
            status = 2
            continue
        for n, candidates in enumerate(results, 1):
            shown = "  ".join(f"{piece} {prob:.3f}" for piece, prob in candidates)
            print(f"  [MASK] {n}: {shown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
