"""The data job against google-research/bert's create_pretraining_data.py on real prose.

Usage (the `benchmark` extra installs the peer; build the corpus first, see prose_corpus.py):
    python -m benchmarks.prose_corpus --out=runs/bench/ko_prose.txt
    python -m benchmarks.beam_throughput --corpus=runs/bench/ko_prose.txt --repeats=3 \
        [--baseline=../older-checkout] [--memory_sizes_mb=20,200]
    python -m benchmarks.beam_throughput --corpus=../shared/corpus/nsmc/nsmc_corpus.txt.gz \
        --corpus_mb=15 --dupe_factors=1 --repeats=3 --wordpiece

Speed: the corpus is real, non-repeated Korean prose. One SentencePiece model (--vocab_size
learned pieces) serves both tools: the peer gets it as a WordPiece vocab.txt (see
google_bert_peer.py). Every run is a fresh process pinned to one core (taskset -c 0):
  * peer: its own main() with max_seq_length 128, 20 predictions, short_seq_prob 0.1 (its
    default) and the dupe factor of the row; its NSP draws B from another document;
  * ours, its semantics: --nsp_mode=random_doc --short_seq_prob=0.1, one worker;
  * ours, default mode: swap NSP, short_seq_prob 0;
  * with --baseline, an older checkout of this project runs the same two configurations
    (and, with --wordpiece, the default one with the WordPiece tokenizer);
  * with --wordpiece, this job runs both configurations again with a WordPiece
    tokenizer.json of the same vocabulary size (BERT's normalizer and pre-tokenizer, as
    klue/bert-base ships it), trained on the corpus with the `tokenizers` library: the path
    of a published checkpoint's tokenizer (docs/published-models.md).
--corpus_mb takes the corpus's first N MB (plain or .gz), cut where a document ends.
`examples/s` is examples over seconds of processing: ours from building the pipeline to
publishing (Beam's start-up, about a second, included), the peer's main() (its TensorFlow
import left out); `process s` is each process's whole life. Medians of --repeats,
interleaved run by run.

Memory (--memory_sizes_mb): corpora of those sizes in which every word is made new (two
random Hangul syllables appended), the word cache's worst case; peak RSS of the job's
largest process, polled every 0.1 s, one worker, in both NSP modes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, corpus_slice
from bertcommon import cli
from bertdata.tokenizer import train_tokenizer

PEER_FLAGS = ["--nsp_mode=random_doc", "--short_seq_prob=0.1"]


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd


def peak_rss(proc) -> int:
    """Polls a running process tree until it ends; returns its largest process's peak."""
    import psutil

    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            for p in [root, *root.children(recursive=True)]:
                peak = max(peak, p.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    return peak


def run_ours(checkout: str, corpus: str, spm_model: str, flags, workdir: str) -> dict:
    """One run of the data job; FLAGS may name another tokenizer (--tokenizer)."""
    out = tempfile.mkdtemp(dir=workdir)
    tokenizer = [] if any(f.startswith("--tokenizer=") for f in flags) else \
        [f"--spm_model={spm_model}"]
    cmd = pinned([sys.executable, "-m", "beam_jobs.create_pretraining_data", f"--input={corpus}",
                  f"--output_dir={out}/data", *tokenizer, "--max_seq_length=128",
                  "--max_predictions_per_seq=20", "--runner=FnApiRunner", *flags])
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss = peak_rss(proc)
    wall = time.perf_counter() - started
    _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(err.decode()[-3000:])
    with open(os.path.join(out, "data", "stats.json")) as f:
        stats = json.load(f)
    shutil.rmtree(out)
    return {"examples": stats["examples"], "seconds": stats["seconds"], "process": wall,
            "rss": rss, "hit_rate": stats.get("tokenizer", {}).get("word_cache_hit_rate")}


def run_peer(corpus: str, spm_model: str, dupe: int, workdir: str) -> dict:
    out = os.path.join(workdir, "peer.tfrecord")
    cmd = pinned([sys.executable, "-m", "benchmarks.google_bert_peer",
                  f"--spm_model={spm_model}", f"--input_file={corpus}", f"--output_file={out}",
                  f"--dupe_factor={dupe}"])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss = peak_rss(proc)
    stdout, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(err.decode()[-3000:])
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    return {"examples": result["examples"], "seconds": result["seconds"],
            "process": result["process_seconds"], "rss": rss, "hit_rate": None}


def novel_word_corpus(corpus: str, path: str, size_mb: int, seed: int = 0) -> None:
    """size_mb of the corpus's lines with every word made new: the word cache's worst case."""
    rng = random.Random(seed)
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().splitlines()
    written, target = 0, size_mb * 1_000_000
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            for line in lines:
                if line:
                    line = " ".join(w + chr(0xAC00 + rng.randrange(11172)) +
                                    chr(0xAC00 + rng.randrange(11172)) for w in line.split(" "))
                text = line + "\n"
                out.write(text)
                written += len(text.encode())


def train_wordpiece(corpus: str, folder: str, vocab_size: int) -> str:
    """FOLDER with a WordPiece tokenizer.json of VOCAB_SIZE tokens (the five BERT special
    tokens first), BERT's normalizer (cased) and pre-tokenizer, trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import WordPieceTrainer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train([corpus], WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    print(f"WordPiece tokenizer.json: {tok.get_vocab_size()} tokens", flush=True)
    return folder


def speed(args, corpus: str, spm_model: str, workdir: str) -> None:
    configs = {"ours, random_doc": (REPO, PEER_FLAGS), "ours, default": (REPO, [])}
    if args.wordpiece:
        import sentencepiece as spm

        size = spm.SentencePieceProcessor(model_file=spm_model).get_piece_size()
        folder = train_wordpiece(corpus, os.path.join(workdir, "wordpiece"), size)
        configs["ours, random_doc, WordPiece"] = (REPO, [*PEER_FLAGS, f"--tokenizer={folder}"])
        configs["ours, default, WordPiece"] = (REPO, [f"--tokenizer={folder}"])
    if args.baseline:
        configs["baseline, random_doc"] = (args.baseline, PEER_FLAGS)
        configs["baseline, default"] = (args.baseline, [])
        if args.wordpiece:
            configs["baseline, default, WordPiece"] = (args.baseline, [f"--tokenizer={folder}"])
    for dupe in args.dupe_factors:
        runs = {name: [] for name in ["peer", *configs]}
        for rep in range(args.repeats):
            runs["peer"].append(run_peer(corpus, spm_model, dupe, workdir))
            for name, (checkout, flags) in configs.items():
                runs[name].append(run_ours(checkout, corpus, spm_model,
                                           [*flags, f"--dupe_factor={dupe}"], workdir))
            print(f"  dupe {dupe}: run {rep + 1} of {args.repeats} done", flush=True)
        report(dupe, runs)


def report(dupe: int, runs: dict) -> None:
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    rates = {}
    print(f"\ndupe_factor {dupe} (medians of {len(runs['peer'])} runs, one core)")
    print("| tool | examples | seconds | process s | examples/s | x peer | word-cache hits "
          "| peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in runs.items():
        rates[name] = statistics.median(r["examples"] / r["seconds"] for r in rows)
    for name, rows in runs.items():
        hits = rows[0]["hit_rate"]
        print(f"| {name} | {med(rows, 'examples'):,.0f} | {med(rows, 'seconds'):.2f} | "
              f"{med(rows, 'process'):.2f} | {rates[name]:,.0f} | "
              f"{rates[name] / rates['peer']:.2f} | {'-' if hits is None else f'{hits:.3f}'} | "
              f"{med(rows, 'rss') / 2**20:.0f} MiB |")


def memory(args, corpus: str, spm_model: str, workdir: str) -> None:
    print("\npeak RSS, largest process, one worker, every word new (worst case for the cache)")
    print("| input | mode | examples | seconds | peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.memory_sizes_mb:
        path = os.path.join(workdir, f"novel-{size}.txt")
        novel_word_corpus(corpus, path, size)
        for mode, flags in (("default", []), ("random_doc", PEER_FLAGS)):
            r = run_ours(REPO, path, spm_model, flags, workdir)
            print(f"| {size} MB | {mode} | {r['examples']:,} | {r['seconds']:.1f} | "
                  f"{r['rss'] / 2**20:.0f} MiB |", flush=True)
        os.remove(path)


@dataclasses.dataclass(frozen=True)
class ThroughputSettings(cli.Settings):
    corpus: str = cli.flag(help="real prose (benchmarks.prose_corpus, the NSMC corpus), "
                                "plain or .gz")
    corpus_mb: float | None = cli.flag(None, check=cli.positive, help="its first N MB")
    spm_model: str | None = cli.flag(None, help="default: trained on the corpus")
    vocab_size: int = cli.flag(8000, check=cli.at_least(100))
    dupe_factors: tuple[int, ...] = cli.flag((1, 10))
    repeats: int = cli.flag(3, check=cli.positive)
    baseline: str | None = cli.flag(None, help="an older checkout of this project")
    memory_sizes_mb: tuple[int, ...] = cli.flag((), help="e.g. 20,200")
    skip_speed: bool = cli.flag(False)
    wordpiece: bool = cli.flag(False, help="also a WordPiece tokenizer.json of --vocab_size")


def measure(args: ThroughputSettings) -> int:
    with tempfile.TemporaryDirectory(prefix="bertpipe-bench-") as workdir:
        path = args.corpus if args.corpus_mb is None else \
            corpus_slice(args.corpus, args.corpus_mb, os.path.join(workdir, "corpus.txt"))
        spm_model = args.spm_model
        if spm_model is None:
            spm_model = train_tokenizer([path], os.path.join(workdir, "ko"), args.vocab_size)
        print(f"corpus {args.corpus}: {os.path.getsize(path):,} bytes used; "
              f"tokenizer {spm_model}")
        if not args.skip_speed:
            speed(args, path, spm_model, workdir)
        if args.memory_sizes_mb:
            memory(args, path, spm_model, workdir)
    return 0


def main(argv=None) -> int:
    return cli.run_command(ThroughputSettings, measure, argv,
                           description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
