"""The Hugging Face fast-tokenizer backend of `bertdata.vocabulary.Tokenizer`: any
`tokenizer.json` (WordPiece, BPE, Unigram), run by the `tokenizers` library in Rust, so the
ids are those `transformers`' AutoTokenizer gives for the same folder.

The special ids come from the tokenizer: the tokens its folder declares
(bertdata.tokenizer_files reads tokenizer_config.json and special_tokens_map.json), else the
usual spellings found in its vocabulary. Whole-word masking follows the tokenizer's own
word boundary: a WordPiece piece without the '##' prefix begins a word; for Metaspace
(SentencePiece-style) and byte-level BPE, a piece with the '▁' or 'Ġ' marker does.

A tokenizer.json of BERT's own pipeline (WordPiece after BertNormalizer and
BertPreTokenizer, as published BERTs ship it) never cuts a piece across BERT's white space,
so the data job encodes it through a word cache (bertdata.word_cache.CachedWords), as this
project's SentencePiece models; any other goes to the `tokenizers` library line by line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import tokenizers

from bertcommon.files import BadFile
from bertdata.vocabulary import ROLES, SpecialIds, Tokenizer
from bertdata.word_cache import DEFAULT_WORD_CACHE_SIZE, CachedWords

# How a fast tokenizer marks words: pieces that continue a word carry a prefix (WordPiece's
# '##'), pieces that begin one carry a marker (Metaspace's '▁', byte-level BPE's 'Ġ'), or
# nothing tells (every piece is a word of its own).
CONTINUATION_PREFIX, START_MARKER, NO_BOUNDARY = "continuation_prefix", "start_marker", "none"
BYTE_LEVEL_SPACE = "\u0120"  # 'Ġ'
# The spellings of each role looked for when the folder declares none.
USUAL_TOKENS = {"pad": ("[PAD]", "<pad>"), "unk": ("[UNK]", "<unk>"),
                "cls": ("[CLS]", "<s>"), "sep": ("[SEP]", "</s>"),
                "mask": ("[MASK]", "<mask>")}
# Placeholders that published vocabularies reserve ([unused7] in BERT's): never drawn as a
# random replacement.
_RESERVED = re.compile(r"\[unused\d+\]|<unused\d+>")
# Words encoded in one text by FastTokenizer._encode_words.
_WORDS_PER_TEXT = 1000
# Where the word cache cuts lines: tab, line ends and the space separators (Zs), all white
# space to BERT's normalizer and pre-tokenizer. Cutting at fewer places than BERT is
# harmless; Python's str.split() would cut at characters BERT deletes (\x0b, \x1c, ...),
# which join their neighbours into one word. The Zs characters are written out: scanning
# Unicode for them took 0.17 s of every import.
BERT_SPACE_CHARACTERS = "\t\n\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
    "\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_BERT_SPACE = re.compile(f"[{BERT_SPACE_CHARACTERS}]")


class FastTokenizer(CachedWords, Tokenizer):
    """A loaded tokenizer.json. CONTENT: its bytes; NAME: its path, for messages;
    DECLARED: role -> token as the folder names them; BOUNDARY: (kind, marker);
    WHITESPACE_WORDS: its pieces never cross BERT's white space (bert_wordpiece in
    bertdata.tokenizer_files), so a word cache may serve it."""

    def __init__(self, content: bytes, name: str, declared: dict[str, str],
                 boundary: tuple[str, str], *, word_cache_size: int = DEFAULT_WORD_CACHE_SIZE,
                 whitespace_words: bool = False):
        self.name = name
        self.sha256 = hashlib.sha256(content).hexdigest()
        try:
            self._tok = tokenizers.Tokenizer.from_str(content.decode("utf-8"))
        except Exception as e:  # tokenizers raises a bare Exception for a bad file
            raise BadFile(f"{name}: not a tokenizer.json the tokenizers library can load "
                          f"({str(e)[:120]})") from None
        # Examples are cut to length by the data job, not by a setting left in the file.
        self._tok.no_truncation()
        self._tok.no_padding()
        size = self._tok.get_vocab_size(with_added_tokens=True)
        pieces = [self._tok.id_to_token(i) for i in range(size)]
        if None in pieces:
            raise BadFile(f"{name}: no token has id {pieces.index(None)}; ids must run from "
                          f"0 to {size - 1}")
        is_special = np.zeros(size, dtype=bool)
        for i, added in self._tok.get_added_tokens_decoder().items():
            if added.special and i < size:
                is_special[i] = True
        kind, marker = boundary
        if kind == CONTINUATION_PREFIX:
            word_start = np.array([not p.startswith(marker) for p in pieces], dtype=bool)
        elif kind == START_MARKER:
            word_start = np.array([p.startswith(marker) for p in pieces], dtype=bool)
        else:
            word_start = np.ones(size, dtype=bool)
        ordinary = np.array([not _RESERVED.fullmatch(p) for p in pieces], dtype=bool)
        self._set_vocabulary(pieces, self._special_ids(declared), is_special, word_start,
                             ordinary)
        self.words_encoded = 0
        self._start_word_cache(
            lambda word: self._tok.encode(word, add_special_tokens=False).ids,
            word_cache_size, whitespace_words, encode_words=self._encode_words)

    def _special_ids(self, declared: dict[str, str]) -> SpecialIds:
        ids = {}
        for role in ROLES:
            if role in declared:
                found = self._tok.token_to_id(declared[role])
                if found is None:
                    raise BadFile(f"{self.name}: the {role} token {declared[role]!r} that its "
                                  f"folder declares ({role}_token) is not in its vocabulary")
            else:
                found = next((i for t in USUAL_TOKENS[role]
                              if (i := self._tok.token_to_id(t)) is not None), None)
                if found is None:
                    raise BadFile(f"{self.name}: the tokenizer has no {role} token (none of "
                                  f"{', '.join(USUAL_TOKENS[role])} is in its vocabulary, and "
                                  f"no tokenizer_config.json beside it names a {role}_token)")
            ids[role] = found
        if len(set(ids.values())) < len(ids):
            raise BadFile(f"{self.name}: two special roles share one id ({ids})")
        return SpecialIds(**ids)

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        """The ids of each line, without special tokens (the data job places those)."""
        return [e.ids for e in self._tok.encode_batch_fast(list(lines),
                                                           add_special_tokens=False)]

    def split_words(self, line: str) -> list[str]:
        return _BERT_SPACE.split(line)

    def _encode_words(self, words: list[str]) -> list[bytes]:
        """The int32 ids of each of WORDS, as bytes. The library's cost is mostly per text
        encoded, so the words go in chunks joined by the [SEP] token, which the library
        matches before anything else, and the ids are cut at its id. A chunk with a word
        that holds the [SEP] text itself (more cuts than joins) goes word by word."""
        sep, joiner = self.special.sep, f" {self.pieces[self.special.sep]} "
        chunks = [words[at:at + _WORDS_PER_TEXT] for at in range(0, len(words),
                                                                  _WORDS_PER_TEXT)]
        encoded = self._tok.encode_batch_fast([joiner.join(c) for c in chunks],
                                              add_special_tokens=False)
        out = []
        for chunk, enc in zip(chunks, encoded, strict=True):
            ids = np.asarray(enc.ids, np.int32)
            cuts = np.flatnonzero(ids == sep)
            if len(cuts) != len(chunk) - 1:
                out.extend(np.asarray(e.ids, np.int32).tobytes() for e in
                           self._tok.encode_batch_fast(chunk, add_special_tokens=False))
                continue
            data = ids.tobytes()
            starts = [0, *(4 * (cuts + 1)).tolist()]
            ends = [*(4 * cuts).tolist(), len(data)]
            out.extend(data[a:b] for a, b in zip(starts, ends, strict=True))
        return out

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)
