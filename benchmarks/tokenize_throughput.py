"""Tokenizing cost per word: the Beam job's word cache against the SentencePiece encoder.

Usage:
    python benchmarks/tokenize_throughput.py --size_mb=5 --new_word_shares=0,0.1,0.2,0.3,0.5

Builds a corpus from the bundled sample as beam_throughput.py does and trains the same
4,000 + 7 piece tokenizer. For each share, that share of the corpus' words is made new (two
random Hangul syllables appended, so the cache has never seen them), then documents are
tokenized with `Tokenizer.encode_flat`: once with the word cache (warmed on the plain corpus
first, as a long-running worker's would be) and once with the cache off (the encoder on whole
lines). Prints microseconds per word, medians of --repeats runs alternating in this process,
and the share of words the cache sent to the encoder.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from beam_throughput import SAMPLE, build_corpus  # noqa: E402

from bertdata import corpus  # noqa: E402
from bertdata.tokenizer import Tokenizer, train_tokenizer  # noqa: E402


def with_new_words(docs, share, seed=0):
    rnd = random.Random(seed)

    def word(w):
        if rnd.random() >= share:
            return w
        return w + chr(0xAC00 + rnd.randrange(11172)) + chr(0xAC00 + rnd.randrange(11172))

    return [[" ".join(map(word, line.split(" "))) for line in lines] for lines in docs]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size_mb", type=int, default=5)
    p.add_argument("--new_word_shares", default="0,0.1,0.2,0.3,0.5")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = train_tokenizer([SAMPLE], os.path.join(tmp, "ko"), 4000)
        path = os.path.join(tmp, "corpus.txt")
        build_corpus(path, args.size_mb)
        with open(path, "rb") as f:
            docs = [lines for _, lines in corpus.read_documents(f, 0, None)]
        with open(model, "rb") as f:
            proto = f.read()
    print(f"{len(docs):,} documents; the cache is warmed on them before each timed pass")
    print(f"{'new words':>9} {'cache us/word':>14} {'encoder us/word':>16} {'sent to encoder':>16}")
    for share in [float(x) for x in args.new_word_shares.split(",")]:
        data = with_new_words(docs, share)
        words = sum(len(line.split(" ")) for lines in data for line in lines)
        timings = {"cache": [], "encoder": []}
        bypassed = 0.0
        for _ in range(args.repeats):
            for name, size in (("cache", None), ("encoder", 0)):
                tok = Tokenizer(proto) if size is None else Tokenizer(proto, word_cache_size=0)
                for lines in docs:  # warm-up: the plain corpus
                    tok.encode_flat(lines)
                before = tok.words_bypassed
                start = time.perf_counter()
                for lines in data:
                    tok.encode_flat(lines)
                timings[name].append((time.perf_counter() - start) / words * 1e6)
                if size is None:
                    bypassed = (tok.words_bypassed - before) / words
        print(f"{share:>9.0%} {statistics.median(timings['cache']):>14.3f} "
              f"{statistics.median(timings['encoder']):>16.3f} {bypassed:>16.0%}")


if __name__ == "__main__":
    main()
