"""Train and load the project's SentencePiece BPE tokenizer (the SentencePiece backend of
`bertdata.vocabulary.Tokenizer`).

Usage:
    python -m bertdata.tokenizer --input=data/ko_sample.txt --model_prefix=runs/ko \
        --vocab_size=4000

Writes `runs/ko.model` and `runs/ko.vocab` with vocab_size + 7 pieces laid out as
[PAD]=0 [UNK]=1 [BOS]=2 [EOS]=3 [SEP]=4 [CLS]=5 [MASK]=6, then the learned pieces.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sentencepiece as spm

from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertdata.corpus import looks_like_text
from bertdata.vocabulary import SpecialIds, Tokenizer
from bertdata.word_cache import DEFAULT_WORD_CACHE_SIZE, CachedWords

log = logging.getLogger("bertdata.tokenizer")

# The fixed layout every other part of the project relies on.
PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SEP, CLS, MASK = "[SEP]", "[CLS]", "[MASK]"
SPECIAL_PIECES = (PAD, UNK, BOS, EOS, SEP, CLS, MASK)
NUM_SPECIAL = len(SPECIAL_PIECES)
WORD_START = "\u2581"  # SentencePiece's '▁', marks a piece that begins a word.

NORMALIZATIONS = ("nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity")


# The ids of SPECIAL_PIECES in every model `train_tokenizer` makes (and only there).
SPECIAL_IDS = SpecialIds(pad=0, unk=1, bos=2, eos=3, sep=4, cls=5, mask=6)


def train_tokenizer(
    inputs: Sequence[str],
    model_prefix: str,
    vocab_size: int,
    *,
    character_coverage: float = 0.9995,
    normalization: str = "nmt_nfkc",
    byte_fallback: bool = False,
    input_sentence_size: int = 2_000_000,
    max_sentence_length: int = 8192,
    num_threads: int | None = None,
) -> str:
    """Trains a SentencePiece BPE model with the project's special-piece layout.

    Args:
      inputs: corpus files, one sentence per line (blank lines are ignored by the trainer).
      model_prefix: output path prefix; `.model` and `.vocab` are appended.
      vocab_size: number of learned pieces; the model holds vocab_size + 7.
      character_coverage: share of characters the vocabulary must cover; 1.0 keeps every
        character seen (with Hangul, 0.9995 keeps all common syllables and drops rare ones
        to [UNK]).
      normalization: SentencePiece normalization rule. All choices keep precomposed Hangul
        syllables intact (NFKC composes; nothing here strips accents or decomposes to NFD).
      byte_fallback: encode characters outside the vocabulary as UTF-8 byte pieces
        instead of [UNK].
      input_sentence_size: at most this many lines are sampled (uniformly, shuffled) from
        the inputs, so a multi-GB corpus trains in bounded memory.
      max_sentence_length: longer lines (in bytes) are skipped by the trainer.
      num_threads: trainer threads, default all cores.

    Returns:
      The path of the written `.model` file.
    """
    if vocab_size < 1:
        raise ValueError(f"--vocab_size must be positive, got {vocab_size}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"--normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if not 0.0 < character_coverage <= 1.0:
        raise ValueError(f"--character_coverage must be in (0, 1], got {character_coverage}")
    if input_sentence_size < 0:
        raise ValueError(f"--input_sentence_size must be >= 0 (0: every line), got "
                         f"{input_sentence_size}")
    for path in inputs:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--input file not found: {path}")
        if os.path.getsize(path) == 0:
            raise ValueError(f"--input file is empty: {path}")
        try:
            with _open_corpus(path) as f:
                problem = looks_like_text(f.read(1 << 16))
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            problem = f"cannot be decompressed as its extension says ({e})"
        if problem:
            raise ValueError(f"--input {path} {problem}")
    parent = os.path.dirname(model_prefix)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        _train(inputs, model_prefix, vocab_size, character_coverage, normalization,
               byte_fallback, input_sentence_size, max_sentence_length, num_threads)
    except RuntimeError as e:  # SentencePiece's own words, without its source locations
        reason = str(e).split("] ", 1)[-1].strip()
        raise ValueError(f"SentencePiece cannot train on {', '.join(inputs)}: {reason}") \
            from None
    return model_prefix + ".model"


def _compressed(path: str) -> bool:
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def _open_corpus(path: str):
    """PATH for reading bytes, decompressed by its extension as the data job reads it
    (.gz, .bz2, .xz, .zst, .deflate: Beam's file systems)."""
    if not _compressed(path):
        return open(path, "rb")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path)


def _compressed_lines(inputs):
    """Every line of INPUTS, decompressed, for SentencePiece's sentence iterator."""
    for path in inputs:
        with _open_corpus(path) as f:
            for raw in iter(f.readline, b""):
                yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _train(inputs, model_prefix, vocab_size, character_coverage, normalization, byte_fallback,
           input_sentence_size, max_sentence_length, num_threads) -> None:
    # SentencePiece reads plain files itself; compressed ones are read here and fed to it.
    source = {"sentence_iterator": _compressed_lines(inputs)} \
        if any(_compressed(p) for p in inputs) else {"input": list(inputs)}
    spm.SentencePieceTrainer.train(
        **source,
        model_prefix=model_prefix,
        model_type="bpe",
        vocab_size=vocab_size + NUM_SPECIAL,
        pad_id=SPECIAL_IDS.pad,
        unk_id=SPECIAL_IDS.unk,
        bos_id=SPECIAL_IDS.bos,
        eos_id=SPECIAL_IDS.eos,
        pad_piece=PAD,
        unk_piece=UNK,
        bos_piece=BOS,
        eos_piece=EOS,
        user_defined_symbols=[SEP, CLS, MASK],
        character_coverage=character_coverage,
        normalization_rule_name=normalization,
        byte_fallback=byte_fallback,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        max_sentence_length=max_sentence_length,
        num_threads=num_threads or os.cpu_count() or 1,
        minloglevel=2,
    )


class SentencePieceTokenizer(CachedWords, Tokenizer):
    """A loaded SentencePiece model of this project's layout (`train_tokenizer`'s), with a
    word cache in front of the encoder (bertdata.word_cache.CachedWords); see
    `bertdata.vocabulary.Tokenizer`."""

    def __init__(self, model_proto: bytes, name: str = "<memory>", *,
                 word_cache_size: int = DEFAULT_WORD_CACHE_SIZE):
        self.name = name
        self.sha256 = hashlib.sha256(model_proto).hexdigest()
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(model_proto)
        except Exception as e:  # sentencepiece raises a bare RuntimeError/OSError
            raise ValueError(f"{name}: not a SentencePiece model ({e})") from None
        size = self._sp.get_piece_size()
        pieces = [self._sp.id_to_piece(i) for i in range(size)]
        for want_id, want in enumerate(SPECIAL_PIECES):
            got = pieces[want_id] if want_id < len(pieces) else None
            if got != want:
                raise ValueError(
                    f"{name}: piece {want_id} is {got!r}, expected {want!r}; train the model "
                    "with `python -m bertdata.tokenizer`, or give a model's tokenizer.json "
                    "(--tokenizer) so the special ids are read from it"
                )
        is_special = np.zeros(size, dtype=bool)
        is_special[:NUM_SPECIAL] = True
        ordinary = np.array(
            [not (self._sp.is_control(i) or self._sp.is_unknown(i) or self._sp.is_unused(i))
             for i in range(size)], dtype=bool)
        self._set_vocabulary(pieces, SPECIAL_IDS, is_special,
                             np.array([p.startswith(WORD_START) for p in pieces], dtype=bool),
                             ordinary)
        self.words_encoded = 0
        # SentencePiece cuts pieces inside whitespace-separated words only (for models
        # _check_word_cache accepts), so each word's pieces can be looked up.
        self._start_word_cache(lambda word: self._sp.encode(word, out_type=int),
                               word_cache_size, word_cache_size > 0 and
                               self._check_word_cache())

    @classmethod
    def load(cls, path: str) -> SentencePieceTokenizer:
        """Loads a `.model` file (local path); raises naming the file when it is unusable."""
        try:
            with open(path, "rb") as f:
                proto = f.read()
        except OSError as e:
            raise FileNotFoundError(f"cannot read SentencePiece model {path}: {e}") from None
        return cls(proto, name=path)

    def _check_word_cache(self) -> bool:
        """True when encoding word by word gives exactly the ids of encoding whole lines.

        That needs pieces that never span whitespace, a '▁' prefixed to every word, and runs
        of whitespace collapsed: the settings `train_tokenizer` always uses. Other models
        (trained elsewhere, or with other options) are detected here and use the encoder.
        """
        if any(WORD_START in p[1:] for p in self.pieces[NUM_SPECIAL:]):
            return False
        words = [p[1:] for p in self.pieces[NUM_SPECIAL:] if p.startswith(WORD_START) and
                 len(p) > 1][:3]
        if len(words) < 2:
            return False
        whole = self._sp.encode(f" {words[0]}  {words[1]} {words[-1]} ", out_type=int)
        parts = [self._sp.encode(w, out_type=int) for w in (words[0], words[1], words[-1])]
        return whole == [i for p in parts for i in p]

    def encode(self, lines: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """Tokenizes a batch of lines into lists of ids.

        One thread by default: the Beam job parallelizes over workers, and SentencePiece's
        default (every core per call) would have each worker compete for all of them.
        """
        return self._sp.encode(list(lines), out_type=int, num_threads=num_threads)

    def encode_line(self, line: str) -> list[int]:
        return self._sp.encode(line, out_type=int)

    def decode(self, ids) -> str:
        return self._sp.decode([int(i) for i in ids])


@dataclass(frozen=True)
class TokenizerSettings(cli.Settings):
    inputs: tuple[str, ...] = cli.flag(name="input", help="corpus file(s), comma-separated")
    model_prefix: str = cli.flag(help="writes PREFIX.model and PREFIX.vocab")
    vocab_size: int = cli.flag(check=cli.positive, help="learned pieces (+7 special)")
    # These two are checked by train_tokenizer, which library callers use directly.
    character_coverage: float = cli.flag(0.9995, help="in (0, 1]")
    normalization: str = cli.flag("nmt_nfkc", choices=NORMALIZATIONS)
    byte_fallback: bool = cli.flag(False, help="unknown characters as UTF-8 byte pieces")
    input_sentence_size: int = cli.flag(2_000_000,
                                        help="lines sampled from the inputs (0: every line)")
    num_threads: int | None = cli.flag(None, check=cli.positive, help="default: all cores")

    def problems(self):
        if not self.inputs:
            yield "--input names no file"


def _command(settings: TokenizerSettings) -> None:
    try:
        path = train_tokenizer(
            settings.inputs, settings.model_prefix, settings.vocab_size,
            character_coverage=settings.character_coverage,
            normalization=settings.normalization, byte_fallback=settings.byte_fallback,
            input_sentence_size=settings.input_sentence_size,
            num_threads=settings.num_threads)
    except (OSError, ValueError, RuntimeError) as e:
        raise BertpipeError(str(e)) from None
    tok = SentencePieceTokenizer.load(path)
    log.info("wrote %s and %s.vocab: %d pieces", path, settings.model_prefix, tok.vocab_size)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(TokenizerSettings, _command, argv,
                           description="Train the project's SentencePiece BPE tokenizer.")


if __name__ == "__main__":
    sys.exit(main())
