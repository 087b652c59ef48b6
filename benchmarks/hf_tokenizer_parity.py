"""The Hugging Face tokenizer export against SentencePiece on real text: disagreements and
speed, side by side in one run.

    python benchmarks/hf_tokenizer_parity.py --corpus=../shared/corpus/nsmc/nsmc_corpus.txt.gz \
        --texts=../shared/corpus/nsmc/nsmc_train.txt.gz --corpus_mb=10 --vocab_size=32000

Trains the project's tokenizer on the first --corpus_mb MB of --corpus, exports its
tokenizer.json, and encodes every text of --texts (an NSMC-format TSV, or plain lines) with
SentencePiece (the ids training used) and with the `tokenizers` library reading the export
(what transformers' AutoTokenizer runs). Prints the number of texts whose ids differ, each
differing text's class (README: the input classes the export documents), and texts/s of both
(medians of --repeats runs).
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bertdata.hf_tokenizer import tokenizer_json  # noqa: E402
from bertdata.tokenizer import Tokenizer, train_tokenizer  # noqa: E402


def _open(path):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else \
        open(path, encoding="utf-8")


def read_texts(path: str) -> list[str]:
    with _open(path) as f:
        rows = f.read().split("\n")
    if rows and rows[0].startswith("id\tdocument"):
        return [r.split("\t")[1] for r in rows[1:] if r.count("\t") == 2]
    return [r for r in rows if r]


def corpus_prefix(path: str, megabytes: float, out: str) -> str:
    with _open(path) as f, open(out, "w", encoding="utf-8") as g:
        g.write(f.read(int(megabytes * 1e6)))
    return out


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--texts", required=True)
    p.add_argument("--corpus_mb", type=float, default=10)
    p.add_argument("--vocab_size", type=int, default=32000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import tokenizers

    from bertdata.hf_tokenizer import syllable_then_final_jamo

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = train_tokenizer([corpus_prefix(args.corpus, args.corpus_mb, f"{tmp}/c.txt")],
                                f"{tmp}/ko", args.vocab_size)
        print(f"tokenizer: {args.vocab_size} + 7 pieces on {args.corpus_mb} MB in "
              f"{time.perf_counter() - start:.1f} s")
        with open(model, "rb") as f:
            proto = f.read()
    sp = Tokenizer(proto)
    hf = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(proto)))
    texts = read_texts(args.texts)
    ours, t_sp = timed(lambda: sp.encode(texts), args.repeats)
    theirs, t_hf = timed(lambda: [e.ids for e in hf.encode_batch(texts,
                                                                 add_special_tokens=False)],
                         args.repeats)
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    classes = {"syllable + final jamo": sum(syllable_then_final_jamo(texts[i]) for i in differ),
               "special piece text": sum(any(s in texts[i] for s in ("[PAD]", "[UNK]", "[BOS]",
                                                                      "[EOS]", "[MASK]"))
                                         for i in differ)}
    print(f"texts: {len(texts):,}; ids differ on {len(differ)} ({classes})")
    for i in differ[:10]:
        print("  ", repr(texts[i][:80]))
    print(f"SentencePiece {len(texts) / t_sp:,.0f} texts/s; tokenizers (export, batch, all "
          f"cores) {len(texts) / t_hf:,.0f} texts/s; ratio {t_sp / t_hf:.2f}")


if __name__ == "__main__":
    main()
