"""The data job's fixed costs: time to first byte and total, by corpus size and mode.

    python -m benchmarks.fixed_costs --sizes_mb=5,50 --repeats=3

The first N MB of the corpus (cut at a document's end) for each --sizes_mb, one tokenizer of
32,000 + 7 pieces trained on the smallest slice, then the command a user runs
(`python -m beam_jobs.create_pretraining_data`, a fresh process) for each size, NSP mode and
running mode, interleaved run by run. For each run the stopwatch starts when the process is
started and reads:
  - first byte: the first TFRecord piece with data in the job's staging folder (polled every
    10 ms): start-up, planning and the first bundle's work;
  - total: the process's exit, the dataset published.
Also measured, as the floor under both: the same Python importing the job's module and doing
nothing (`import beam_jobs.create_pretraining_data`). Prints medians and the examples/s of
the whole command. With --baseline=CHECKOUT, an older checkout of this project runs every
case too, interleaved with this one, and its rows follow each case's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from beam_jobs.create_pretraining_data import STAGING_PREFIX
from benchmarks.common import NSMC, REPO, corpus_slice
from bertcommon import cli
from bertdata.schema import SPLITS
from bertdata.tokenizer import train_tokenizer

RUNNING_MODES = {"in-process": [],
                 "all cores": [f"--direct_num_workers={os.cpu_count()}",
                               "--direct_running_mode=multi_processing"]}


def first_piece_with_data(output_dir: str) -> bool:
    """Whether a TFRecord piece in OUTPUT_DIR's staging folder holds any bytes yet."""
    try:
        folders = [e.path for e in os.scandir(output_dir) if e.name.startswith(STAGING_PREFIX)]
        for folder in folders:
            for entry in os.scandir(folder):
                if entry.name.startswith(SPLITS) and entry.stat().st_size > 0:
                    return True
    except FileNotFoundError:  # not made yet, or removed by the publishing step
        pass
    return False


def run_once(flags: list[str], out: str, checkout: str = REPO) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "beam_jobs.create_pretraining_data",
                             f"--output_dir={out}", "--overwrite", "--verbosity=warning",
                             *flags], cwd=checkout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and first_piece_with_data(out):
            first = time.perf_counter() - start
        time.sleep(0.01)
    total = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"the job failed: {stderr.strip()[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"first_byte": first, "total": total, "examples": summary["examples"]}


def import_floor(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import beam_jobs.create_pretraining_data"],
                       cwd=REPO, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclasses.dataclass(frozen=True)
class FixedCostSettings(cli.Settings):
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"), help="plain or .gz")
    sizes_mb: tuple[float, ...] = cli.flag((5.0, 50.0), help="slices of the corpus, in MB")
    nsp_modes: tuple[str, ...] = cli.flag(("swap", "random_doc"))
    running_modes: tuple[str, ...] = cli.flag(tuple(RUNNING_MODES))
    repeats: int = cli.flag(3, check=cli.positive)
    baseline: str | None = cli.flag(None, help="an older checkout of this project")

    def problems(self):
        unknown = [m for m in self.running_modes if m not in RUNNING_MODES]
        if unknown:
            yield f"--running_modes: {', '.join(unknown)}; expected {', '.join(RUNNING_MODES)}"


def measure(args: FixedCostSettings) -> None:
    sizes = list(args.sizes_mb)
    checkouts = {"this": REPO, **({"baseline": args.baseline} if args.baseline else {})}
    cases = [(size, nsp, running, version) for size in sizes
             for nsp in args.nsp_modes for running in args.running_modes
             for version in checkouts]
    with tempfile.TemporaryDirectory() as work:
        corpora = {size: corpus_slice(args.corpus, size,
                                      os.path.join(work, f"corpus-{size:g}.txt"))
                   for size in sizes}
        spm_model = train_tokenizer([corpora[min(sizes)]], os.path.join(work, "ko"), 32_000)
        runs = {case: [] for case in cases}
        for _ in range(args.repeats):
            for size, nsp, running, version in cases:
                flags = [f"--input={corpora[size]}", f"--spm_model={spm_model}",
                         f"--nsp_mode={nsp}", *RUNNING_MODES[running]]
                runs[(size, nsp, running, version)].append(
                    run_once(flags, os.path.join(work, "out"), checkouts[version]))
        floor = import_floor(args.repeats)
    print(f"\nmedians of {args.repeats} runs; importing the job's module alone: {floor:.2f} s")
    print("| corpus | NSP mode | running mode | version | examples | first byte | total | "
          "examples/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (size, nsp, running, version), results in runs.items():
        first = statistics.median(r["first_byte"] or float("nan") for r in results)
        total = statistics.median(r["total"] for r in results)
        examples = results[0]["examples"]
        print(f"| {size:g} MB | {nsp} | {running} | {version} | {examples:,} | {first:.2f} s | "
              f"{total:.2f} s | {examples / total:,.0f} |")


def main(argv=None) -> int:
    return cli.run_command(FixedCostSettings, measure, argv,
                           description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
