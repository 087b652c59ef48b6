"""Hard Korean inputs for tokenizer parity: every class of text on which a converted
SentencePiece tokenizer is known to drift, built here (no external data)."""

import unicodedata

_SYLLABLES = ["대한민국은 민주공화국이다.", "모든 국민은 법 앞에 평등하다.", "한글과 한자를 섞어"]


def stress_lines(sample_lines: list[str]) -> list[str]:
    """About 150 lines: sample lines, and each hard class of input, alone and mixed."""
    lines = [line for line in sample_lines if line.strip()][::40][:40]
    nfd = [unicodedata.normalize("NFD", s) for s in _SYLLABLES]
    lines += nfd + [nfd[0] + " " + _SYLLABLES[1], "ㅎ" + nfd[2]]
    # Compatibility jamo and bare conjoining jamo: laughter, crying, initials, half syllables.
    lines += ["ㅋㅋㅋㅋ 진짜 웃기다", "ㅠㅠ 슬퍼요ㅜㅜ", "ㄱㄴㄷㄹ", "ㅏㅑㅓㅕ", "ㅋㅏ", "ᄀᄁᄂ",
              "ᅡᅢ", "ᄒᆞᆫ글", "ㄹㅇ ㅇㅈ ㅇㅇ", "감사합니닼ㅋㅋ",
              # A syllable without a final consonant, then a bare final consonant.
              "\ud558\u11ab\uae00", "\uac00\u11a8", "영화ㄳ", "평점너무높넬니ㄵ"]
    # Full-width forms, the ideographic space and other spaces, half-width katakana.
    lines += ["ＡＢＣ　１２３！", "대한민국\u3000헌법", "\u3000\u3000앞뒤\u3000", "ｶﾞｷﾞ ﾊﾝｸﾞﾙ",
              "Ｋｏｒｅａ（대한）", "가\u00a0나\u2003다\u2009라", "탭\t문자\t\t둘"]
    # Hanja, emoji (with modifiers, joiners and variation selectors), symbols, emoticons.
    lines += ["大韓民國 憲法 第一條", "國民의 權利와 義務", "좋아요 👍👍🏽 ❤️ 😂😂😂",
              "가족 👨\u200d👩\u200d👧 🇰🇷 1️⃣", "( ´Д`)b 굿", "(╯°□°)╯︵ ┻━┻", "♡♥☆★※→←",
              "㈜ ㎏ ㎡ ℃ № ™ ½ ⅓ ①②③", "…‥ “따옴표” ‘작은’ 「괄호」 『겹』", "Ω Å ﬁ ﬀ ẞ ß"]
    # Latin and digits mixed in, URLs, code, case.
    lines += ["BERT를 2024년에 pre-training 했다", "http://example.com/a?b=1&c=2 참고",
              "COVID-19 백신 3차 접종률 87.5%", "iPhone15Pro 가격은 $999", "x = f(y) + 2*z;",
              "ÉCOLE école Ecole", "ŞĞÜ İı", "e\u0301 a\u0300 o\u0308"]
    # White space: runs, leading, trailing, only white space, empty.
    lines += ["  앞에 공백", "뒤에 공백   ", "중간에    공백   여러   개", "   ", "", " ", "\t",
              "가", "a", "1", ".", "가 나 다 라 마 바 사"]
    # Special pieces written in the text.
    lines += ["대한민국은 민주[MASK]국이다.", "[MASK]은 수도다", "수도는 [MASK] 이다",
              "[CLS] 문장 [SEP] 둘째 [SEP]", "[MASK][MASK] 연속", "앞 [MASK]", "[PAD] [UNK]",
              "[BOS][EOS] 제어", "[mask] 소문자", "[MASK]"]
    # Characters no sample-trained model knows: runs of them, alone and between known ones.
    lines += ["ДДД ЖЖ", "가ДД나", "ฉันรักเกาหลี", "مرحبا بالعالم", "Ελληνικά", "אבג",
              "\U0001F9D1\u200d\U0001F4BB", "𠀀𠀁 古字", "\ue000\ue001 사용자 영역"]
    # Long lines and repeated characters.
    lines += ["가" * 300, "ㅋ" * 100, "하하" * 80 + " " + "!" * 50,
              " ".join(sample_lines[i] for i in range(0, 30, 3))]
    return lines


def stress_pairs(lines: list[str]) -> list[tuple[str, str]]:
    """Pairs of stress lines, including empty and long sides."""
    texts = [x for x in lines if x.strip()]
    return [(texts[i], texts[-1 - i]) for i in range(0, len(texts) // 2, 3)]
