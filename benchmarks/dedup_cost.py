"""What --dedup costs and finds: the data job on one corpus with --dedup=none, documents and
lines, side by side in one invocation.

    python -m benchmarks.dedup_cost --corpus_mb=10 --repeats=3

The first --corpus_mb of the corpus (cut at a document's end) is written to a temporary
file, a tokenizer of 32,000 + 7 pieces is trained on it, then each mode runs as a fresh
process on one worker (in-process runner), interleaved run by run. Prints the median wall
seconds of each mode, its ratio to --dedup=none, the documents and lines dropped and the
examples written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchmarks.common import NSMC, REPO, corpus_slice
from bertcommon import cli
from bertdata.tokenizer import train_tokenizer

MODES = ("none", "documents", "lines")


@dataclasses.dataclass(frozen=True)
class DedupCostSettings(cli.Settings):
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"), help="plain or .gz")
    corpus_mb: float = cli.flag(10.0, check=cli.positive, help="its first N MB")
    repeats: int = cli.flag(3, check=cli.positive)


def run_once(corpus: str, spm_model: str, mode: str, out: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "beam_jobs.create_pretraining_data", f"--input={corpus}",
         f"--output_dir={out}", f"--spm_model={spm_model}", f"--dedup={mode}", "--overwrite",
         "--verbosity=warning"], cwd=REPO, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    with open(os.path.join(out, "stats.json")) as f:
        skipped = json.load(f)["skipped_or_repaired"]
    return {"seconds": summary["seconds"], "examples": summary["examples"],
            "documents_dropped": skipped.get("documents_duplicate_dropped", 0),
            "lines_dropped": skipped.get("lines_duplicate_dropped", 0)}


def measure(args: DedupCostSettings) -> None:
    with tempfile.TemporaryDirectory() as work:
        corpus = os.path.join(work, "corpus.txt")
        corpus_slice(args.corpus, args.corpus_mb, corpus)
        spm_model = train_tokenizer([corpus], os.path.join(work, "ko"), 32_000)
        runs = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                runs[mode].append(run_once(corpus, spm_model, mode, os.path.join(work, mode)))
    base = statistics.median(r["seconds"] for r in runs["none"])
    print(f"{args.corpus} (first {args.corpus_mb} MB), median of {args.repeats}:")
    print("| --dedup | seconds | vs none | documents dropped | lines dropped | examples |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode in MODES:
        seconds = statistics.median(r["seconds"] for r in runs[mode])
        last = runs[mode][-1]
        print(f"| {mode} | {seconds:.1f} | {seconds / base:.2f}x | "
              f"{last['documents_dropped']:,} | {last['lines_dropped']:,} | "
              f"{last['examples']:,} |")


def main(argv=None) -> int:
    return cli.run_command(DedupCostSettings, measure, argv,
                           description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
