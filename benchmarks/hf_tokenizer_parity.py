"""The Hugging Face tokenizer export against SentencePiece on real text: disagreements and
speed, side by side in one run.

    python -m benchmarks.hf_tokenizer_parity --corpus_mb=10 --vocab_size=32000

Trains the project's tokenizer on the first --corpus_mb MB of --corpus, exports its
tokenizer.json, and encodes every text of --texts (an NSMC-format TSV, or plain lines) with
SentencePiece (the ids training used) and with the `tokenizers` library reading the export
(what transformers' AutoTokenizer runs). Prints the number of texts whose ids differ, each
differing text's class (README: the input classes the export documents), and texts/s of both
(medians of --repeats runs).
"""

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

from benchmarks.common import NSMC, corpus_slice, open_text, read_nsmc
from bertcommon import cli
from bertdata.hf_tokenizer import syllable_then_final_jamo, tokenizer_json
from bertdata.tokenizer import SentencePieceTokenizer, train_tokenizer


@dataclasses.dataclass(frozen=True)
class ParitySettings(cli.Settings):
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"),
                           help="the tokenizer's training text, plain or .gz")
    texts: str = cli.flag(os.path.join(NSMC, "nsmc_train.txt.gz"),
                          help="the texts encoded: an NSMC-format TSV or plain lines")
    corpus_mb: float = cli.flag(10.0, check=cli.positive)
    vocab_size: int = cli.flag(32_000, check=cli.at_least(100))
    repeats: int = cli.flag(3, check=cli.positive)


def read_texts(path: str) -> list[str]:
    with open_text(path) as f:
        nsmc_format = f.readline().startswith("id\tdocument")
    if nsmc_format:
        return [text for _, text, _ in read_nsmc(path)]
    with open_text(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def measure(args: ParitySettings) -> None:
    import tokenizers

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = train_tokenizer([corpus_slice(args.corpus, args.corpus_mb, f"{tmp}/c.txt")],
                                f"{tmp}/ko", args.vocab_size)
        print(f"tokenizer: {args.vocab_size} + 7 pieces on {args.corpus_mb} MB in "
              f"{time.perf_counter() - start:.1f} s")
        with open(model, "rb") as f:
            proto = f.read()
    sp = SentencePieceTokenizer(proto)
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


def main(argv=None) -> int:
    return cli.run_command(ParitySettings, measure, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
