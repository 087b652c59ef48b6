"""The whole pipeline on one corpus: tokenizer, Beam job, training, evaluation.

Usage (the README's main command runs exactly this on the bundled sample):
    python -m bertmodel.end_to_end --corpus=data/ko_sample.txt --workdir=runs/sample

Stages, each announced as it starts:
  1. SentencePiece BPE on the corpus -> WORKDIR/tokenizer/ko.model
  2. the Beam job on all local cores -> WORKDIR/data (train- and eval- shards by document)
  3. bertmodel.train -> WORKDIR/model (checkpoints, TensorBoard logs, plots.png)
  4. evaluation on the held-out documents: MLM and NSP accuracy next to the accuracy of
     always answering the most frequent masked piece (and the majority NSP label).
Rerunning replaces WORKDIR's dataset and model.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import time


def _stage(n: int, title: str) -> float:
    print(f"\n=== [{n}/4] {title}", flush=True)
    return time.time()


def majority_baselines(train_pattern: str, eval_pattern: str) -> dict:
    """Accuracy on eval of always predicting train's most frequent masked piece / NSP label."""
    import bertdata

    def labels(pattern):
        pieces, nsp = collections.Counter(), collections.Counter()
        ds = bertdata.make_dataset(pattern, 256, is_training=False)
        for _, y in ds:
            w = y["masked_lm_weights"].numpy() > 0
            pieces.update(y["masked_lm_ids"].numpy()[w].tolist())
            nsp.update(y["next_sentence_labels"].numpy().tolist())
        return pieces, nsp

    train_pieces, train_nsp = labels(train_pattern)
    eval_pieces, eval_nsp = labels(eval_pattern)
    top_piece = train_pieces.most_common(1)[0][0]
    top_label = train_nsp.most_common(1)[0][0]
    return {
        "most_frequent_piece": int(top_piece),
        "mlm_accuracy": eval_pieces[top_piece] / max(1, sum(eval_pieces.values())),
        "nsp_accuracy": eval_nsp[top_label] / max(1, sum(eval_nsp.values())),
        "eval_masked_pieces": int(sum(eval_pieces.values())),
        "eval_examples": int(sum(eval_nsp.values())),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run the whole pipeline on one corpus.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", default="data/ko_sample.txt")
    p.add_argument("--workdir", default="runs/sample")
    p.add_argument("--vocab_size", type=int, default=2000, help="learned pieces (+7 special)")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--dupe_factor", type=int, default=20,
                   help="passes over the corpus, each with new masks and cuts")
    p.add_argument("--eval_fraction", type=float, default=0.15)
    p.add_argument("--config", default="mini")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="Beam worker processes")
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)

    from beam_jobs import create_pretraining_data as job
    from bertdata import tokenizer
    from bertmodel import train

    started = time.time()
    tok_prefix = os.path.join(args.workdir, "tokenizer", "ko")
    data_dir = os.path.join(args.workdir, "data")
    model_dir = os.path.join(args.workdir, "model")

    t = _stage(1, f"SentencePiece BPE, {args.vocab_size} + 7 pieces, on {args.corpus}")
    if tokenizer.main([f"--input={args.corpus}", f"--model_prefix={tok_prefix}",
                       f"--vocab_size={args.vocab_size}"]):
        return 2
    print(f"    {time.time() - t:.1f}s")

    t = _stage(2, f"Beam job on {args.workers} local worker(s) -> {data_dir}")
    beam_args = [f"--input={args.corpus}", f"--output_dir={data_dir}",
                 f"--spm_model={tok_prefix}.model", f"--max_seq_length={args.max_seq_length}",
                 f"--dupe_factor={args.dupe_factor}", f"--eval_fraction={args.eval_fraction}",
                 f"--seed={args.seed}", "--overwrite", "--split_bytes=16384"]
    if args.workers > 1:
        beam_args += [f"--direct_num_workers={args.workers}",
                      "--direct_running_mode=multi_processing"]
    if job.main(beam_args):
        return 2
    print(f"    {time.time() - t:.1f}s")

    t = _stage(3, f"training the '{args.config}' BERT for {args.epochs} epochs -> {model_dir}")
    shutil.rmtree(model_dir, ignore_errors=True)  # a fresh run, not a resume of an old one
    try:
        summary = train.run([f"--tfrecords={data_dir}",
                             f"--eval_tfrecords={os.path.join(data_dir, 'eval-*')}",
                             f"--model_dir={model_dir}", f"--config={args.config}",
                             f"--batch_size={args.batch_size}", f"--epochs={args.epochs}",
                             f"--learning_rate={args.learning_rate}", f"--seed={args.seed}",
                             "--verbose=2"])
    except train.TrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"    {time.time() - t:.1f}s")

    _stage(4, "evaluation on held-out documents")
    base = majority_baselines(os.path.join(data_dir, "train-*"),
                              os.path.join(data_dir, "eval-*"))
    ev = summary["eval"]
    result = {
        "eval_examples": base["eval_examples"],
        "mlm_accuracy": round(ev["mlm_accuracy"], 4),
        "mlm_accuracy_most_frequent_piece_baseline": round(base["mlm_accuracy"], 4),
        "nsp_accuracy": round(ev["nsp_accuracy"], 4),
        "nsp_accuracy_majority_baseline": round(base["nsp_accuracy"], 4),
        "mlm_perplexity": round(ev["mlm_perplexity"], 2),
        "model": os.path.join(model_dir, "model.keras"),
        "encoder": os.path.join(model_dir, "encoder.keras"),
        "tensorboard_logs": summary["logs"],
        "plots": summary["plots"],
        "tokenizer": tok_prefix + ".model",
        "data": data_dir,
        "seconds": round(time.time() - started, 1),
    }
    print(f"    MLM accuracy {result['mlm_accuracy']:.3f} vs most-frequent-piece baseline "
          f"{result['mlm_accuracy_most_frequent_piece_baseline']:.3f}; NSP accuracy "
          f"{result['nsp_accuracy']:.3f} vs majority baseline "
          f"{result['nsp_accuracy_majority_baseline']:.3f}")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    with open(os.path.join(args.workdir, "summary.json"), "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    print(f"\nTry it: python -m bertmodel.fill_mask --model_dir={model_dir} "
          "--text='대한민국은 민주[MASK]국이다.'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
