"""Throughput and memory of the Beam data job at two corpus sizes, with 1 and 2 workers.

Usage:
    python benchmarks/beam_throughput.py --sizes_mb=20,200 --workers=1,2 --repeats=1

Builds corpora of the given sizes from the bundled sample (each copy of a document gets a
distinct first line, so no two documents are identical), trains one tokenizer, then runs
`python -m beam_jobs.create_pretraining_data` (seq 128, 20 predictions, dupe_factor 1) as a
child process per configuration. 1 worker runs the in-process FnApiRunner; N > 1 uses its
multi_processing mode. The process tree is polled for RSS every 0.1 s. Prints examples/s,
examples/s per worker, and the peak RSS of the largest single process (the per-worker
memory bound) and of the whole tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "ko_sample.txt")


def build_corpus(path: str, size_mb: int) -> int:
    with open(SAMPLE, encoding="utf-8") as f:
        docs = [d for d in f.read().split("\n\n") if d.strip()]
    target = size_mb * 1_000_000
    written = copy = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            for d in docs:
                text = f"사본 {copy} 문서\n{d.strip()}\n\n"
                out.write(text)
                written += len(text.encode())
                copy += 1
    return written


def run_job(corpus, out_dir, spm_model, workers, extra_args=()):
    import psutil

    cmd = [sys.executable, "-m", "beam_jobs.create_pretraining_data", f"--input={corpus}",
           f"--output_dir={out_dir}", f"--spm_model={spm_model}", "--max_seq_length=128",
           "--max_predictions_per_seq=20", "--runner=FnApiRunner", "--split_bytes=4000000",
           f"--direct_num_workers={workers}", *extra_args]
    if workers > 1:
        cmd.append("--direct_running_mode=multi_processing")
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak_one = peak_tree = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss.append(p.memory_info().rss)
            peak_one = max(peak_one, max(rss, default=0))
            peak_tree = max(peak_tree, sum(rss))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(err.decode()[-3000:])
    summary = json.loads(out.decode().strip().splitlines()[-1])
    return summary, wall, peak_one, peak_tree, _children_cpu_seconds() - cpu_before


def _children_cpu_seconds() -> float:
    """User + system CPU time of every finished descendant (the job and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes_mb", default="20,200")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--vocab_size", type=int, default=4000)
    p.add_argument("--word_cache_size", type=int, default=None,
                   help="passed to the job; 0 runs the SentencePiece encoder on every line "
                        "(this corpus repeats its words far more than real text does)")
    args = p.parse_args(argv)
    sys.path.insert(0, REPO)
    from bertdata.tokenizer import train_tokenizer

    sizes = [int(x) for x in args.sizes_mb.split(",")]
    workers = [int(x) for x in args.workers.split(",")]
    rows = []
    extra = ([] if args.word_cache_size is None
             else [f"--word_cache_size={args.word_cache_size}"])
    with tempfile.TemporaryDirectory() as tmp:
        spm_model = train_tokenizer([SAMPLE], os.path.join(tmp, "ko"), args.vocab_size)
        for size in sizes:
            corpus = os.path.join(tmp, f"corpus_{size}mb.txt")
            nbytes = build_corpus(corpus, size)
            for w in workers:
                runs = []
                for r in range(args.repeats):
                    out_dir = os.path.join(tmp, f"out_{size}_{w}_{r}")
                    summary, wall, one, tree, cpu = run_job(corpus, out_dir, spm_model, w,
                                                            extra)
                    rate = summary["examples"] / summary["seconds"]
                    runs.append((rate, wall, one, tree, summary, summary["examples"] / cpu))
                    print(f"{size} MB, {w} worker(s), run {r}: {summary['examples']:,} "
                          f"examples in {summary['seconds']:.1f}s pipeline / {wall:.1f}s "
                          f"process, {rate:,.0f} examples/s, {cpu:.1f} CPU s "
                          f"({summary['examples'] / cpu:,.0f} examples per CPU s), peak RSS "
                          f"{one / 2**20:.0f} MiB (one process), {tree / 2**20:.0f} MiB (all)",
                          flush=True)
                rate = statistics.median(r[0] for r in runs)
                rows.append({"size_mb": size, "bytes": nbytes, "workers": w,
                             "examples": runs[0][4]["examples"], "examples_per_s": rate,
                             "examples_per_s_per_worker": rate / w,
                             "examples_per_cpu_s": statistics.median(r[5] for r in runs),
                             "peak_rss_one_mib": max(r[2] for r in runs) / 2**20,
                             "peak_rss_all_mib": max(r[3] for r in runs) / 2**20})
                shutil_rmtree(os.path.join(tmp, f"out_{size}_{w}_*"))
            os.remove(corpus)
    print(f"\ncores: {os.cpu_count()}; seq 128, 20 predictions, dupe_factor 1; "
          f"medians of {args.repeats} run(s)")
    print(f"{'size':>8} {'workers':>7} {'examples':>10} {'ex/s':>9} {'ex/s/worker':>11} "
          f"{'ex/CPU s':>9} {'peak RSS one':>13} {'peak RSS all':>13}")
    for r in rows:
        print(f"{r['size_mb']:>6}MB {r['workers']:>7} {r['examples']:>10,} "
              f"{r['examples_per_s']:>9,.0f} {r['examples_per_s_per_worker']:>11,.0f} "
              f"{r['examples_per_cpu_s']:>9,.0f} "
              f"{r['peak_rss_one_mib']:>10.0f}MiB {r['peak_rss_all_mib']:>10.0f}MiB")
    by = {(r["size_mb"], r["workers"]): r for r in rows}
    if len(workers) > 1:
        for size in sizes:
            a, b = by[(size, workers[0])], by[(size, workers[-1])]
            print(f"scaling {workers[0]} -> {workers[-1]} workers at {size} MB: "
                  f"{b['examples_per_s'] / a['examples_per_s']:.2f}x")
    if len(sizes) > 1:
        for w in workers:
            small, big = by[(sizes[0], w)], by[(sizes[-1], w)]
            print(f"peak RSS (one process) {sizes[-1]} MB vs {sizes[0]} MB, {w} worker(s): "
                  f"{big['peak_rss_one_mib'] / small['peak_rss_one_mib']:.2f}x")


def shutil_rmtree(pattern):
    import glob
    import shutil

    for path in glob.glob(pattern):
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
