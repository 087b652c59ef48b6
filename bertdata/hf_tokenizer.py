"""The project's SentencePiece model as a Hugging Face `tokenizer.json`.

`tokenizer_json(model_proto)` describes, in the `tokenizers` library's terms, the pipeline
SentencePiece runs for the models `bertdata.tokenizer` trains, so that `transformers`'
AutoTokenizer gives the ids of `Tokenizer.encode` (tests/integration/test_hf_export.py checks
it on a stress set, for every `--normalization` and with `--byte_fallback`):

- normalizer (the whole text at once): Unicode NFC, the model's own precompiled
  normalization map, NFC again, then SentencePiece's white-space rules (strip both ends,
  collapse runs, spaces become '▁') and the dummy '▁' before the text. The `tokenizers`
  replay of the map works on grapheme clusters and neither composes decomposed (NFD) Hangul
  nor jamo typed one by one (ㅋㅏ), which SentencePiece's longest-match replay does; the NFC
  steps compose them to the syllables the map gives. Models with `identity` have no map
  and get none of these steps;
- the special pieces [SEP], [CLS] and [MASK] are matched in the normalized text, as
  SentencePiece matches user-defined pieces;
- pre-tokenizer: split before each '▁' (SentencePiece never merges across words);
- model: BPE over the model's pieces, with merges ranked by the merged piece's score (what
  SentencePiece's BPE maximizes), runs of unknown characters fused into one [UNK] and, with
  `--byte_fallback`, unknown characters as their UTF-8 byte pieces;
- post-processor: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with segment ids 0 up to and
  including the first [SEP], 1 after it.

Where the two cannot agree (docs/hugging-face.md; pinned by tests):
a syllable without a final consonant followed by a final-consonant jamo (화 + ㄳ: the NFC
after the map composes them, SentencePiece keeps them apart; without that NFC, typed jamo
such as ㄱㅐ would differ, 145 NSMC reviews instead of 2), a text that is one special piece
and nothing else (SentencePiece puts a lone '▁' before it), and the literal text of [PAD],
[UNK], [BOS] and [EOS] (transformers matches it as those tokens).

The model proto is read with a small wire-format reader: the `sentencepiece_model_pb2`
module that ships with sentencepiece needs a newer protobuf runtime than Beam and TensorFlow
allow.
"""

from __future__ import annotations

import dataclasses
import unicodedata

import sentencepiece as spm

from bertdata.tokenizer import (
    CLS,
    MASK,
    NUM_SPECIAL,
    SEP,
    SPECIAL_IDS,
    SPECIAL_PIECES,
    UNK,
    WORD_START,
)

# The special pieces SentencePiece matches inside text (user-defined symbols); the others
# ([PAD], [UNK], [BOS], [EOS]) are only ever ids.
MATCHED_IN_TEXT = (SEP, CLS, MASK)
_BPE = 2  # TrainerSpec.ModelType
# Unicode noncharacters (never in interchanged text) that hold the special pieces' places
# while a case-folding map runs.
_STAND_INS = {piece: chr(0xFDD0 + i) for i, piece in enumerate(MATCHED_IN_TEXT)}


class UnsupportedTokenizer(ValueError):
    """A SentencePiece model this export cannot reproduce exactly; says which property."""


@dataclasses.dataclass(frozen=True)
class SentencePieceSettings:
    """The fields of a serialized SentencePiece ModelProto the conversion depends on."""

    model_type: int
    byte_fallback: bool
    split_by_whitespace: bool
    normalization: str
    precompiled_charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> dict[int, list]:
    """field number -> its values (ints for varints, bytes for length-delimited fields)."""
    out: dict[int, list] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at:at + size], at + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def read_settings(model_proto: bytes) -> SentencePieceSettings:
    """The conversion's inputs from a serialized ModelProto (proto2 defaults applied)."""
    model = _fields(model_proto)
    trainer = _fields(model.get(2, [b""])[0])
    normalizer = _fields(model.get(3, [b""])[0])

    def flag(fields, number, default):
        return bool(fields[number][-1]) if number in fields else default

    return SentencePieceSettings(
        model_type=trainer.get(3, [1])[-1],
        byte_fallback=flag(trainer, 35, False),
        split_by_whitespace=flag(trainer, 22, True),
        normalization=normalizer.get(1, [b""])[-1].decode("utf-8"),
        precompiled_charsmap=normalizer.get(2, [b""])[-1],
        add_dummy_prefix=flag(normalizer, 3, True),
        remove_extra_whitespaces=flag(normalizer, 4, True),
        escape_whitespaces=flag(normalizer, 5, True))


def check_convertible(settings: SentencePieceSettings, pieces: list[str]) -> None:
    """Raises UnsupportedTokenizer unless the model has the layout `train_tokenizer` makes."""
    if settings.model_type != _BPE:
        raise UnsupportedTokenizer("only BPE SentencePiece models are supported "
                                   f"(model_type {settings.model_type})")
    wanted = {"add_dummy_prefix": True, "remove_extra_whitespaces": True,
              "escape_whitespaces": True, "split_by_whitespace": True}
    for name, value in wanted.items():
        if getattr(settings, name) != value:
            raise UnsupportedTokenizer(f"the SentencePiece model has {name}={not value}; "
                                       "the export supports the settings of "
                                       "bertdata.tokenizer only")
    if tuple(pieces[:NUM_SPECIAL]) != SPECIAL_PIECES:
        raise UnsupportedTokenizer(f"pieces 0..{NUM_SPECIAL - 1} are {pieces[:NUM_SPECIAL]}, "
                                   f"expected {list(SPECIAL_PIECES)}")
    if any(WORD_START in p[1:] for p in pieces[NUM_SPECIAL:]):
        raise UnsupportedTokenizer("a piece spans a word boundary ('▁' inside a piece)")


def _merges(sp, pieces: list[str]) -> list[list[str]]:
    """BPE merges: every split of a piece into two pieces, ranked by the merged piece's
    score (ties by id), which is the order SentencePiece's BPE applies them in."""
    index = {p: i for i, p in enumerate(pieces)}
    ranked = []
    for i, piece in enumerate(pieces):
        if i < NUM_SPECIAL or sp.is_byte(i) or sp.is_control(i) or len(piece) < 2:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in index and right in index and index[left] >= NUM_SPECIAL and \
                    index[right] >= NUM_SPECIAL:
                ranked.append((-sp.get_score(i), i, index[left], [left, right]))
    ranked.sort(key=lambda r: r[:3])
    return [merge for *_, merge in ranked]


def _normalizer(settings: SentencePieceSettings) -> dict:
    steps = []
    if settings.precompiled_charsmap:
        import base64

        # SentencePiece leaves its user-defined pieces as they are; the map would case-fold
        # them, so they stand aside as noncharacters while it runs.
        protect = settings.normalization.endswith("_cf")
        steps += [{"type": "Replace", "pattern": {"String": piece}, "content": stand_in}
                  for piece, stand_in in _STAND_INS.items() if protect]
        steps += [{"type": "NFC"},
                  {"type": "Precompiled", "precompiled_charsmap":
                   base64.b64encode(settings.precompiled_charsmap).decode("ascii")},
                  {"type": "NFC"}]
        steps += [{"type": "Replace", "pattern": {"String": stand_in}, "content": piece}
                  for piece, stand_in in _STAND_INS.items() if protect]
    specials = "|".join(p.replace("[", r"\[").replace("]", r"\]") for p in MATCHED_IN_TEXT)
    steps += [
        # SentencePiece's white space is the ASCII space (the maps turn other spaces into it).
        {"type": "Replace", "pattern": {"Regex": "^ +| +$"}, "content": ""},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        {"type": "Replace", "pattern": {"String": " "}, "content": WORD_START},
        # SentencePiece's dummy '▁' before the text. The library also normalizes the special
        # pieces' own text with this normalizer, so a text that is exactly one of them gets
        # none (else the special piece would no longer match itself).
        {"type": "Replace", "pattern": {"Regex": f"^(?!(?:{specials})$)(?=.)"},
         "content": WORD_START},
    ]
    return {"type": "Sequence", "normalizers": steps}


def _post_processor() -> dict:
    cls, sep = {"SpecialToken": {"id": CLS, "type_id": 0}}, {"SpecialToken": {"id": SEP,
                                                                              "type_id": 0}}
    return {
        "type": "TemplateProcessing",
        "single": [cls, {"Sequence": {"id": "A", "type_id": 0}}, sep],
        "pair": [cls, {"Sequence": {"id": "A", "type_id": 0}}, sep,
                 {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": SEP, "type_id": 1}}],
        "special_tokens": {p: {"id": p, "ids": [getattr(SPECIAL_IDS, p.strip("[]").lower())],
                               "tokens": [p]} for p in (CLS, SEP)},
    }


def _decoder() -> dict:
    return {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": WORD_START}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def tokenizer_json(model_proto: bytes) -> dict:
    """The `tokenizer.json` document of a model trained by `bertdata.tokenizer`; raises
    UnsupportedTokenizer for a model whose behaviour it cannot reproduce."""
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_proto)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    settings = read_settings(model_proto)
    check_convertible(settings, pieces)
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
              # Matched in normalized text, as SentencePiece matches user-defined pieces.
              "normalized": p in MATCHED_IN_TEXT, "special": True}
             for i, p in enumerate(SPECIAL_PIECES) if p in MATCHED_IN_TEXT]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": _normalizer(settings),
        "pre_tokenizer": {"type": "Split", "pattern": {"String": WORD_START},
                          "behavior": "MergedWithNext", "invert": False},
        "post_processor": _post_processor(),
        "decoder": _decoder(),
        "model": {"type": "BPE", "dropout": None, "unk_token": UNK,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": settings.byte_fallback,
                  "ignore_merges": False,
                  "vocab": {p: i for i, p in enumerate(pieces)},
                  "merges": _merges(sp, pieces)},
    }


def _is_final_consonant(char: str) -> bool:
    """A conjoining final consonant, or a compatibility jamo that NFKC makes one (the
    clusters that only end a syllable: ㄳ ㄵ ㄶ ㄺ ...)."""
    code = ord(unicodedata.normalize("NFKC", char)[0])
    return 0x11A8 <= code <= 0x11FF or 0xD7CB <= code <= 0xD7FB


def syllable_then_final_jamo(text: str) -> bool:
    """True where a precomposed syllable without a final consonant is followed by a final
    consonant jamo: the one Hangul input on which the Hugging Face export composes what
    SentencePiece keeps apart (화 + ㄳ: SentencePiece 화 ᆪ, the export 홗)."""
    for first, second in zip(text, text[1:], strict=False):
        lv = 0xAC00 <= ord(first) <= 0xD7A3 and (ord(first) - 0xAC00) % 28 == 0
        if lv and _is_final_consonant(second):
            return True
    return False
