"""Tokenizers in the layouts of published Korean BERTs, built here offline with the
`tokenizers` library and trained on the sample corpus (no download):

- "klue": a WordPiece vocabulary with [PAD] [UNK] [CLS] [SEP] [MASK] at 0-4, cased, as
  klue/bert-base orders it;
- "mbert": a WordPiece vocabulary with [PAD] 0, [unused1]..[unused99], [UNK] 100, [CLS] 101,
  [SEP] 102, [MASK] 103, as multilingual BERT orders it;
- "kobert": a SentencePiece-style Unigram (Metaspace '▁') with [UNK] 0, [PAD] 1, [CLS] 2,
  [SEP] 3, [MASK] 4, as KoBERT orders it.

Each folder holds tokenizer.json and a tokenizer_config.json naming the special tokens, as
transformers saves them; `vocab.txt` too for WordPiece."""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import UnigramTrainer, WordPieceTrainer

LAYOUTS = ("klue", "mbert", "kobert")
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
KOBERT_SPECIALS = ("[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]")
MBERT_UNUSED = 99


def _lines(corpus: str) -> list[str]:
    with open(corpus, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def _bert_template(tok: Tokenizer) -> processors.TemplateProcessing:
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])


def _wordpiece(corpus: str, vocab_size: int, layout: str) -> Tokenizer:
    trainer_tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainer_tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    trainer_tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer_tok.train_from_iterator(_lines(corpus), WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS)))
    learned = [t for t, _ in sorted(trainer_tok.get_vocab().items(), key=lambda kv: kv[1])
               if t not in BERT_SPECIALS]
    if layout == "klue":
        order = [*BERT_SPECIALS, *learned]
    else:
        order = ["[PAD]", *(f"[unused{i}]" for i in range(1, MBERT_UNUSED + 1)),
                 "[UNK]", "[CLS]", "[SEP]", "[MASK]", *learned]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False,
                                                handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(list(BERT_SPECIALS))
    tok.post_processor = _bert_template(tok)
    return tok


def _kobert(corpus: str, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(_lines(corpus), UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(KOBERT_SPECIALS), unk_token="[UNK]"))
    tok.post_processor = _bert_template(tok)
    return tok


def build_tokenizer(corpus: str, layout: str, vocab_size: int = 1200) -> Tokenizer:
    return _kobert(corpus, vocab_size) if layout == "kobert" else \
        _wordpiece(corpus, vocab_size, layout)


def write_tokenizer_folder(folder: str, corpus: str, layout: str,
                           vocab_size: int = 1200) -> str:
    """FOLDER with the layout's tokenizer files (see the module's doc); returns FOLDER."""
    tok = build_tokenizer(corpus, layout, vocab_size)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    # A WordPiece folder names BertTokenizer, as klue/bert-base's does; a Unigram one the
    # generic class, which runs tokenizer.json as it is.
    config = {"tokenizer_class": "PreTrainedTokenizerFast" if layout == "kobert"
              else "BertTokenizer", "do_lower_case": False,
              "model_max_length": 512, **{f"{role}_token": f"[{role.upper()}]"
                                          for role in ("pad", "unk", "cls", "sep", "mask")}}
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    if layout != "kobert":
        vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
        with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t, _ in vocab))
    return folder
