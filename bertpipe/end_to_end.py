"""The whole pipeline on one corpus: tokenizer, Beam job, training, evaluation.

Usage (the README's main command runs exactly this on the bundled sample):
    python -m bertpipe.end_to_end --corpus=data/ko_sample.txt --workdir=runs/sample

Stages, each announced as it starts:
  1. SentencePiece BPE on the corpus -> WORKDIR/tokenizer/ko.model
  2. the Beam job on all local cores -> WORKDIR/data (train- and eval- shards by document)
  3. bertmodel's trainer -> WORKDIR/model (checkpoints, TensorBoard logs, plots.png, exports)
  4. evaluation on the held-out documents: MLM and NSP accuracy next to the accuracy of
     always answering the most frequent masked piece (and the majority NSP label).
  5. the Hugging Face export -> WORKDIR/model/hf (bertmodel.export_hf; needs the `hf` extra)
Rerunning replaces WORKDIR's dataset and model. It lives above the three packages
(bertdata, beam_jobs, bertmodel) and calls their typed functions, so none of them needs
another's command line.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import shutil
import sys
import time

import bertdata
from beam_jobs.create_pretraining_data import failure_message, run_job
from beam_jobs.settings import JobSettings
from bertcommon import cli, files
from bertcommon.errors import BertpipeError
from bertdata import schema
from bertdata.example_settings import ExampleSettings
from bertdata.tokenizer import train_tokenizer
from bertmodel import export_hf
from bertmodel.train import train
from bertmodel.training.settings import TrainSettings

log = logging.getLogger("bertpipe.end_to_end")


@dataclasses.dataclass(frozen=True)
class EndToEndSettings(cli.Settings):
    corpus: str = cli.flag("data/ko_sample.txt", help="one sentence per line, a blank line "
                                                      "between documents")
    workdir: str = cli.flag("runs/sample", help="tokenizer/, data/, model/ and summary.json")
    vocab_size: int = cli.flag(2000, check=cli.positive, help="learned pieces (+7 special)")
    # The data job's example flags; a small corpus wants more passes than a large one.
    example: ExampleSettings = ExampleSettings(dupe_factor=20)
    eval_fraction: float = cli.flag(0.15, check=cli.between(0.0, 1.0))
    config: str = cli.flag("mini", help="a preset (tiny, mini, seed, base, large)")
    batch_size: int = cli.flag(32, check=cli.positive)
    epochs: int = cli.flag(10, check=cli.positive)
    learning_rate: float | None = cli.flag(None, check=cli.positive,
                                           help="default: the preset's")
    workers: int = cli.flag(os.cpu_count() or 1, check=cli.positive,
                            help="Beam worker processes")
    def problems(self):
        if not os.path.isfile(self.corpus):
            yield f"--corpus {self.corpus}: no such file"


def majority_baselines(train_pattern: str, eval_pattern: str) -> dict:
    """Accuracy on eval of always predicting train's most frequent masked piece / NSP label."""
    def labels(pattern):
        pieces, nsp = collections.Counter(), collections.Counter()
        for _, y in bertdata.make_dataset(pattern, 256, is_training=False):
            w = y[schema.MASKED_LM_WEIGHTS].numpy() > 0
            pieces.update(y[schema.MASKED_LM_IDS].numpy()[w].tolist())
            nsp.update(y[schema.NEXT_SENTENCE_LABELS].numpy().tolist())
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


def _stage(n: int, title: str) -> float:
    log.info("=== [%d/5] %s", n, title)
    return time.time()


def make_dataset_files(cfg: EndToEndSettings, prefix: str, data_dir: str) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    options = JobSettings(
        inputs=(cfg.corpus,), output_dir=data_dir, spm_model=f"{prefix}.model",
        example=cfg.example, eval_fraction=cfg.eval_fraction, split_bytes=16384, overwrite=True)
    workers = ([f"--direct_num_workers={cfg.workers}",
                "--direct_running_mode=multi_processing"] if cfg.workers > 1 else [])
    run_job(options, PipelineOptions(workers))


def export_huggingface(model_dir: str) -> str | None:
    """MODEL_DIR/hf, or None (with the reason logged) when the `hf` extra is missing."""
    try:
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as e:
        log.warning("    no Hugging Face export (%s): pip install -e '.[hf]', then python -m "
                    "bertmodel.export_hf --model_dir=%s --output_dir=%s/hf", e, model_dir,
                    model_dir)
        return None
    out = os.path.join(model_dir, "hf")
    export_hf.export(export_hf.ExportSettings(model_dir=model_dir, output_dir=out,
                                              overwrite=True))
    return out


def run_pipeline(cfg: EndToEndSettings) -> dict:
    started = time.time()
    prefix = os.path.join(cfg.workdir, "tokenizer", "ko")
    data_dir = os.path.join(cfg.workdir, "data")
    model_dir = os.path.join(cfg.workdir, "model")
    t = _stage(1, f"SentencePiece BPE, {cfg.vocab_size} + 7 pieces, on {cfg.corpus}")
    train_tokenizer([cfg.corpus], prefix, cfg.vocab_size)
    log.info("    %.1fs", time.time() - t)
    t = _stage(2, f"Beam job on {cfg.workers} local worker(s) -> {data_dir}")
    make_dataset_files(cfg, prefix, data_dir)
    log.info("    %.1fs", time.time() - t)
    t = _stage(3, f"training the '{cfg.config}' BERT for {cfg.epochs} epochs -> {model_dir}")
    shutil.rmtree(model_dir, ignore_errors=True)  # a fresh run, not a resume of an old one
    summary = train(TrainSettings(
        tfrecords=data_dir, eval_tfrecords=os.path.join(data_dir, "eval-*"),
        model_dir=model_dir, config=cfg.config, batch_size=cfg.batch_size,
        epochs=cfg.epochs, learning_rate=cfg.learning_rate, seed=cfg.example.seed, verbose=2))
    log.info("    %.1fs", time.time() - t)
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
        "export": os.path.join(model_dir, "export"),
        "tensorboard_logs": summary["logs"],
        "plots": summary["plots"],
        "tokenizer": prefix + ".model",
        "data": data_dir,
    }
    _stage(5, f"Hugging Face export -> {os.path.join(model_dir, 'hf')}")
    result["huggingface"] = export_huggingface(model_dir)
    result["seconds"] = round(time.time() - started, 1)
    files.write_json(os.path.join(cfg.workdir, "summary.json"), result)
    return result


def _command(cfg: EndToEndSettings) -> None:
    try:
        result = run_pipeline(cfg)
    except BertpipeError:
        raise
    except (OSError, ValueError) as e:  # bad input, named in one line
        raise BertpipeError(str(e)) from None
    except Exception as e:  # the Beam pipeline failed: say why in one line
        raise BertpipeError(failure_message(e)) from None
    log.info("MLM accuracy %.3f vs most-frequent-piece baseline %.3f; NSP accuracy %.3f vs "
             "majority baseline %.3f", result["mlm_accuracy"],
             result["mlm_accuracy_most_frequent_piece_baseline"], result["nsp_accuracy"],
             result["nsp_accuracy_majority_baseline"])
    print(json.dumps(result, indent=2, ensure_ascii=False))
    log.info("try it: python -m bertmodel.fill_mask --model_dir=%s "
             "--text='대한민국은 민주[MASK]국이다.'", os.path.dirname(result["model"]))
    if result["huggingface"]:
        log.info("in transformers: from transformers import pipeline; "
                 "pipeline('fill-mask', model=%r)('대한민국은 민주[MASK]국이다.')",
                 result["huggingface"])


def main(argv=None) -> int:
    return cli.run_command(EndToEndSettings, _command, argv,
                           description="Run the whole pipeline on one corpus.")


if __name__ == "__main__":
    sys.exit(main())
