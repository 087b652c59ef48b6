"""Tokenizing cost per word: the Beam job's word cache against the SentencePiece encoder.

Usage:
    python -m benchmarks.tokenize_throughput --corpus_mb=5 --new_word_shares=0,0.1,0.2,0.3,0.5

Takes the first --corpus_mb of the corpus (the NSMC corpus by default: real, non-repeated
Korean) and trains a tokenizer of --vocab_size + 7 pieces on it. For each share, that share
of the corpus' words is made new (two random Hangul syllables appended, so the cache has
never seen them), then documents are tokenized with `Tokenizer.encode_flat`: once with the
word cache (warmed on the plain corpus first, as a long-running worker's would be) and once
with the cache off (the encoder on whole lines). Prints microseconds per word, medians of
--repeats runs alternating in this process, and the share of words the cache sent to the
encoder.
"""

from __future__ import annotations

import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time

from benchmarks.common import NSMC, corpus_slice
from bertcommon import cli
from bertdata import corpus
from bertdata.tokenizer import SentencePieceTokenizer, train_tokenizer
from bertdata.word_cache import DEFAULT_WORD_CACHE_SIZE


@dataclasses.dataclass(frozen=True)
class TokenizeSettings(cli.Settings):
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"), help="plain or .gz")
    corpus_mb: float = cli.flag(5.0, check=cli.positive, help="its first N MB")
    vocab_size: int = cli.flag(8000, check=cli.at_least(100))
    new_word_shares: tuple[float, ...] = cli.flag((0.0, 0.1, 0.2, 0.3, 0.5))
    repeats: int = cli.flag(3, check=cli.positive)


def with_new_words(docs, share, seed=0):
    rnd = random.Random(seed)

    def word(w):
        if rnd.random() >= share:
            return w
        return w + chr(0xAC00 + rnd.randrange(11172)) + chr(0xAC00 + rnd.randrange(11172))

    return [[" ".join(map(word, line.split(" "))) for line in lines] for lines in docs]


def measure(args: TokenizeSettings) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = corpus_slice(args.corpus, args.corpus_mb, os.path.join(tmp, "corpus.txt"))
        model = train_tokenizer([path], os.path.join(tmp, "ko"), args.vocab_size)
        with open(path, "rb") as f:
            docs = [lines for _, lines in corpus.read_documents(f, 0, None)]
        with open(model, "rb") as f:
            proto = f.read()
    print(f"{len(docs):,} documents; the cache is warmed on them before each timed pass")
    print(f"{'new words':>9} {'cache us/word':>14} {'encoder us/word':>16} {'sent to encoder':>16}")
    for share in args.new_word_shares:
        data = with_new_words(docs, share)
        words = sum(len(line.split(" ")) for lines in data for line in lines)
        timings = {"cache": [], "encoder": []}
        bypassed = 0.0
        for _ in range(args.repeats):
            for name, size in (("cache", None), ("encoder", 0)):
                tok = SentencePieceTokenizer(
                    proto, word_cache_size=DEFAULT_WORD_CACHE_SIZE if size is None else size)
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


def main(argv=None) -> int:
    return cli.run_command(TokenizeSettings, measure, argv, description=__doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
