"""The one reader of a tokenizer's files: a `--tokenizer` (or `--spm_model`) path to the
bytes every process needs, and from those bytes to a loaded `Tokenizer`.

PATH is one of
  - a `.model` file: this project's SentencePiece model (`python -m bertdata.tokenizer`);
  - a `tokenizer.json`: a Hugging Face fast tokenizer, run with the `tokenizers` library;
  - a folder holding either (a Hugging Face model folder, or one that `bertmodel.export_hf`
    wrote); tokenizer.model is preferred where both are, as this project's exports hold
    both and records made with the model must still match.

Beside a tokenizer.json, `tokenizer_config.json` and `special_tokens_map.json` name the
special tokens (`cls_token`, `sep_token`, `mask_token`, `pad_token`, `unk_token`), in that
order of precedence; a role neither names is looked up by its usual spellings ([CLS] or
<s>, ...). Those files and `vocab.txt` travel with the tokenizer unchanged (`files`), so a
trained model's folder and its exports hold the source's own tokenizer.

Every problem is a BadFile naming the file and field. Paths go through an opener, so the
data job reads gs:// and other Beam file systems with the same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath

from bertcommon.files import BadFile, parse_json, write_bytes
from bertdata.fast_tokenizer import (
    BYTE_LEVEL_SPACE,
    CONTINUATION_PREFIX,
    NO_BOUNDARY,
    START_MARKER,
    FastTokenizer,
)
from bertdata.tokenizer import SentencePieceTokenizer
from bertdata.vocabulary import ROLES, Tokenizer
from bertdata.word_cache import DEFAULT_WORD_CACHE_SIZE

SENTENCEPIECE, FAST = "sentencepiece", "fast"
SENTENCEPIECE_FILE, FAST_FILE = "tokenizer.model", "tokenizer.json"
# Read for the special tokens' names, in this order of precedence.
SPECIAL_TOKEN_FILES = ("tokenizer_config.json", "special_tokens_map.json")
# Files of a fast tokenizer's folder that travel with it unchanged.
COMPANION_FILES = (*SPECIAL_TOKEN_FILES, "vocab.txt")
FAST_MODELS = ("WordPiece", "BPE", "Unigram", "WordLevel")


class NotInGraph(ValueError):
    """The tokenizer has no tensorflow-text counterpart (bertmodel.model.graph_tokenizer);
    the message names the file and why."""


@dataclasses.dataclass(frozen=True)
class WordPieceGraphSettings:
    """What tensorflow-text's FastBertTokenizer needs to give a WordPiece tokenizer.json's
    ids: the pieces by id, BERT's normalizer's one switch, the added tokens matched in the
    text before anything else ((content, id) pairs)."""

    pieces: tuple[str, ...]
    unk_token: str
    continuation_prefix: str
    max_chars_per_word: int
    lowercase: bool
    added_tokens: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class TokenizerSource:
    """A tokenizer's bytes and what its side files say: what a Beam worker receives (it is
    pickled) and what a run folder or an export copies.

    kind: SENTENCEPIECE or FAST; content: the .model or tokenizer.json bytes; name: the path
    read, for messages; special_tokens: (role, token) pairs the side files declare (FAST);
    word_boundary: (CONTINUATION_PREFIX | START_MARKER | NO_BOUNDARY, the marker) (FAST);
    files: (file name, bytes) of everything that travels with it; bert_wordpiece: a
    tokenizer.json of BERT's own pipeline (WordPiece, BertNormalizer, BertPreTokenizer),
    whose pieces never cross white space and which runs in the graph.
    """

    kind: str
    content: bytes
    name: str
    special_tokens: tuple[tuple[str, str], ...] = ()
    word_boundary: tuple[str, str] = (NO_BOUNDARY, "")
    files: tuple[tuple[str, bytes], ...] = ()
    bert_wordpiece: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def load(self, *, word_cache_size: int | None = None) -> Tokenizer:
        """The loaded tokenizer; ValueError (a BadFile for tokenizer.json) names the file."""
        size = DEFAULT_WORD_CACHE_SIZE if word_cache_size is None else word_cache_size
        if self.kind == SENTENCEPIECE:
            return SentencePieceTokenizer(self.content, name=self.name, word_cache_size=size)
        return FastTokenizer(self.content, self.name, dict(self.special_tokens),
                             self.word_boundary, word_cache_size=size,
                             whitespace_words=self.bert_wordpiece)

    def wordpiece_graph_settings(self) -> WordPieceGraphSettings:
        """The settings of the graph counterpart of a WordPiece tokenizer.json with BERT's
        normalizer and pre-tokenizer; NotInGraph for anything else."""
        if self.kind != FAST:
            raise NotInGraph(f"{self.name}: not a tokenizer.json")
        return _wordpiece_graph_settings(parse_json(self.content, self.name), self.name)

    def write_files(self, folder: str) -> None:
        """Writes the tokenizer's files into FOLDER, each whole."""
        for name, data in self.files:
            write_bytes(os.path.join(folder, name), data)


def _local_open(path: str, mode: str = "rb"):
    return open(path, mode)


def read_tokenizer_source(path: str, *, opener=_local_open, exists=os.path.isfile,
                          join=os.path.join) -> TokenizerSource:
    """The TokenizerSource of PATH (see the module's doc); BadFile names what is wrong."""
    path = os.fspath(path)
    if path.endswith(".json"):
        return _read_fast(path, posixpath.dirname(path) if "://" in path
                          else os.path.dirname(path), opener, exists, join)
    if path.endswith(".model"):
        return _read_sentencepiece(path, opener)
    for name, read in ((SENTENCEPIECE_FILE, None), (FAST_FILE, _read_fast)):
        inside = join(path, name)
        if exists(inside):
            return _read_sentencepiece(inside, opener) if read is None else \
                read(inside, path, opener, exists, join)
    raise BadFile(f"{path}: neither a .model file, a tokenizer.json, nor a folder holding "
                  f"{SENTENCEPIECE_FILE} or {FAST_FILE}")


def load_tokenizer(path: str, **kwargs) -> Tokenizer:
    """The loaded tokenizer of a local PATH; ValueError names the file."""
    return read_tokenizer_source(path).load(**kwargs)


def _read_bytes(path: str, opener) -> bytes:
    try:
        with opener(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadFile(f"{path}: cannot read ({e.strerror or e})") from None


def _read_sentencepiece(path: str, opener) -> TokenizerSource:
    content = _read_bytes(path, opener)
    return TokenizerSource(SENTENCEPIECE, content, path,
                           files=((SENTENCEPIECE_FILE, content),))


def _read_fast(path: str, folder: str, opener, exists, join) -> TokenizerSource:
    content = _read_bytes(path, opener)
    described = parse_json(content, path)
    model = described.get("model")
    if not isinstance(model, dict) or model.get("type") not in FAST_MODELS:
        kind = model.get("type") if isinstance(model, dict) else model
        raise BadFile(f"{path}: model.type must be one of {', '.join(FAST_MODELS)} (a "
                      f"Hugging Face fast tokenizer), got {kind!r}")
    files = [(FAST_FILE, content)]
    declared: dict[str, str] = {}
    for name in COMPANION_FILES:
        side = join(folder, name) if folder else name
        if not exists(side):
            continue
        files.append((name, _read_bytes(side, opener)))
        if name in SPECIAL_TOKEN_FILES:
            for role, token in _declared_tokens(side, files[-1][1]).items():
                declared.setdefault(role, token)
    return TokenizerSource(FAST, content, path, tuple(sorted(declared.items())),
                           word_boundary(described, path), tuple(files),
                           bert_wordpiece=_not_in_graph_reason(described) is None)


def _declared_tokens(path: str, content: bytes) -> dict[str, str]:
    """The special tokens tokenizer_config.json or special_tokens_map.json (PATH, holding
    CONTENT) names, by role."""
    data = parse_json(content, path)
    out = {}
    for role in ROLES:
        value = data.get(f"{role}_token")
        if value is None:
            continue
        if isinstance(value, dict):  # an AddedToken written out: {"content": "[MASK]", ...}
            value = value.get("content")
        if not isinstance(value, str) or not value:
            raise BadFile(f"{path}: {role}_token must be a token (a non-empty string, or an "
                          f"object with its content), got {data.get(f'{role}_token')!r}")
        out[role] = value
    return out


def word_boundary(described: dict, path: str) -> tuple[str, str]:
    """How the pieces of a parsed tokenizer.json mark words (see CONTINUATION_PREFIX)."""
    model = described["model"]
    prefix = model.get("continuing_subword_prefix")
    if model["type"] == "WordPiece":
        prefix = "##" if prefix is None else prefix
    if prefix is not None:
        if not isinstance(prefix, str) or not prefix:
            raise BadFile(f"{path}: model.continuing_subword_prefix must be a non-empty "
                          f"string, got {prefix!r}")
        return CONTINUATION_PREFIX, prefix
    for step in _steps(described.get("pre_tokenizer")):
        if step.get("type") == "Metaspace":
            marker = step.get("replacement", "\u2581")
            if not isinstance(marker, str) or len(marker) != 1:
                raise BadFile(f"{path}: pre_tokenizer Metaspace.replacement must be one "
                              f"character, got {marker!r}")
            return START_MARKER, marker
        if step.get("type") == "ByteLevel":
            return START_MARKER, BYTE_LEVEL_SPACE
    return NO_BOUNDARY, ""


def _steps(pre_tokenizer) -> list[dict]:
    """The steps of a pre_tokenizer, a Sequence's flattened (anything else: none)."""
    if not isinstance(pre_tokenizer, dict):
        return []
    if pre_tokenizer.get("type") == "Sequence":
        inner = pre_tokenizer.get("pretokenizers")
        return [s for p in inner for s in _steps(p)] if isinstance(inner, list) else []
    return [pre_tokenizer]


def _wordpiece_graph_settings(described: dict, path: str) -> WordPieceGraphSettings:
    why = _not_in_graph_reason(described)
    if why is not None:
        raise NotInGraph(f"{path}: {why}; tensorflow-text has no counterpart here")
    model, normalizer = described["model"], described["normalizer"]
    entries = described.get("added_tokens") or []
    if not isinstance(entries, list) or not all(isinstance(t, dict) for t in entries):
        raise NotInGraph(f"{path}: added_tokens must be a list of objects")
    added = [(t.get("content"), t.get("id")) for t in entries]
    by_id = {i: token for token, i in model["vocab"].items()}
    for token, i in added:
        if not isinstance(token, str) or not isinstance(i, int) or i < 0:
            raise NotInGraph(f"{path}: added_tokens holds {token!r} with id {i!r}")
        by_id.setdefault(i, token)
    if sorted(by_id) != list(range(len(by_id))):
        raise NotInGraph(f"{path}: the ids of model.vocab and added_tokens do not run from 0 "
                         f"to {len(by_id) - 1}")
    unk, prefix, longest = (model.get(k, default) for k, default in (
        ("unk_token", "[UNK]"), ("continuing_subword_prefix", "##"),
        ("max_input_chars_per_word", 100)))
    if not isinstance(unk, str) or not isinstance(prefix, str) or \
            not isinstance(longest, int) or isinstance(longest, bool) or longest < 1:
        raise NotInGraph(f"{path}: model.unk_token, continuing_subword_prefix or "
                         f"max_input_chars_per_word is not a token, a prefix and a positive "
                         f"integer ({unk!r}, {prefix!r}, {longest!r})")
    return WordPieceGraphSettings(
        pieces=tuple(by_id[i] for i in range(len(by_id))), unk_token=unk,
        continuation_prefix=prefix, max_chars_per_word=longest,
        lowercase=bool(normalizer.get("lowercase", True)), added_tokens=tuple(added))


def _not_in_graph_reason(described: dict) -> str | None:
    """Why a parsed tokenizer.json is not BERT's WordPiece pipeline; None when it is."""
    model, normalizer, pre_tokenizer = (described.get(k) for k in ("model", "normalizer",
                                                                    "pre_tokenizer"))
    if model["type"] != "WordPiece":
        return f"a {model['type']} model"
    if not isinstance(normalizer, dict) or normalizer.get("type") != "BertNormalizer" or \
            not isinstance(pre_tokenizer, dict) or \
            pre_tokenizer.get("type") != "BertPreTokenizer":
        return "a normalizer or pre-tokenizer other than BERT's (BertNormalizer, " \
               "BertPreTokenizer)"
    strip = normalizer.get("strip_accents")
    if strip is not None and strip != normalizer.get("lowercase", True):
        return "accents stripped without lowercasing, or lowercasing that keeps them"
    if not normalizer.get("clean_text", True) or not normalizer.get("handle_chinese_chars",
                                                                    True):
        return "BertNormalizer with clean_text or handle_chinese_chars off"
    if not isinstance(model.get("vocab"), dict):
        return "model.vocab is not a token -> id map"
    added = described.get("added_tokens") or []
    if not isinstance(added, list):
        return "added_tokens is not a list"
    for token in added:
        if isinstance(token, dict) and any(token.get(k) for k in ("lstrip", "rstrip",
                                                                   "single_word")):
            return f"the added token {token.get('content')!r} strips spaces or must be a word"
    return None
