"""Build a corpus of real, non-repeated prose from Debian's documentation packages.

Usage (on Debian or Ubuntu; needs apt-get, dpkg-deb and, for the PDF manuals, pdftotext from
poppler-utils):
    python -m benchmarks.prose_corpus --out=runs/bench/ko_prose.txt [--debs=DIR]
    python -m benchmarks.prose_corpus --language=en --out=runs/bench/en_prose.txt

Korean (the default) is all the Korean documentation Debian ships, about 3.6 MB; English
(--language=en) is far more plentiful, for measurements that need a larger real corpus.

Downloads (into --debs, default a folder beside --out) the packages below with
`apt-get download`, extracts their Korean HTML, Mallard and PDF documentation, and writes it in
the layout the data job reads: one sentence per line, a blank line between documents (one
document per source file). Only lines holding Hangul are kept, and every line is kept once
(the first time it is seen): help systems repeat boilerplate such as navigation text, and a
benchmark on repeated text would flatter the tokenizer's word cache.

Korean packages (PACKAGES["ko"] below): the Korean help of LibreOffice, GNOME and a dozen GNOME
applications, the GIMP manual, the Debian FAQ, installation guide and project history, the
Korean TeX manuals (PDF), and the Emacs and Vim tutorials. Their licences are those of the
packages (free software documentation); the corpus is built on the user's machine and not
shipped.
"""

from __future__ import annotations

import dataclasses
import glob
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile

from bertcommon import cli

KOREAN_PACKAGES = ("libreoffice-help-ko", "gnome-user-docs", "gimp-help-ko", "debian-faq-ko",
            "texlive-lang-korean", "installation-guide-amd64", "debian-history", "emacs-common",
            "vim-runtime", "gnome-terminal", "evince", "gedit", "eog", "gnome-system-monitor",
            "baobab", "gnome-calculator", "totem", "rhythmbox", "gnome-maps", "cheese",
            "gnome-clocks", "gnome-disk-utility", "simple-scan", "shotwell", "gnome-logs",
            "seahorse", "file-roller")
# English: manuals of Python, PostgreSQL, git, GIMP and LibreOffice, and the Debian reference.
ENGLISH_PACKAGES = ("python3.11-doc", "postgresql-doc-15", "git-doc", "gimp-help-en",
                    "libreoffice-help-en-us", "debian-reference-en")
PACKAGES = {"ko": KOREAN_PACKAGES, "en": ENGLISH_PACKAGES}
_BLOCK_TAGS = {"p", "div", "li", "td", "th", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "br",
               "dt", "dd", "title", "pre", "table", "section", "page", "note", "item", "desc",
               "list", "terms", "steps", "code", "screen", "info", "credit"}
_HIDDEN_TAGS = {"script", "style", "pre", "code", "screen", "tt", "kbd", "samp"}
# A sentence ends at . ! ? (also full-width) followed by white space.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def has_hangul(text: str, at_least: int = 1) -> bool:
    return sum(1 for c in text if "\uac00" <= c <= "\ud7a3") >= at_least


def is_english_prose(text: str) -> bool:
    """At least five words, mostly letters: a sentence rather than a heading or code."""
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    return len(words) >= 5 and letters >= 0.7 * len(text.replace(" ", ""))


KEEP = {"ko": lambda s: has_hangul(s, 2), "en": is_english_prose}


class _TextOfMarkup(html.parser.HTMLParser):
    """The text of an HTML or Mallard page, with a line break at every block element;
    scripts, styles and code listings are left out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data.replace("\n", " "))


def markup_text(path: str) -> str:
    parser = _TextOfMarkup()
    with open(path, encoding="utf-8", errors="replace") as f:
        parser.feed(f.read())
    return "".join(parser.parts)


def pdf_text(path: str) -> str:
    done = subprocess.run(["pdftotext", "-q", "-enc", "UTF-8", path, "-"], capture_output=True)
    # pdftotext ends a paragraph with an empty line; lines inside one are joined.
    paragraphs = done.stdout.decode("utf-8", errors="replace").split("\n\n")
    return "\n".join(" ".join(p.split()) for p in paragraphs)


def source_text(path: str) -> str:
    if path.endswith(".pdf"):
        return pdf_text(path)
    if path.endswith((".html", ".xhtml", ".page")):
        return markup_text(path)
    with open(path, encoding="utf-8", errors="replace") as f:  # a plain-text tutorial
        return f.read()


def sentences(text: str) -> list[str]:
    out = []
    for paragraph in text.split("\n"):
        paragraph = " ".join(paragraph.split())
        out.extend(s for s in _SENTENCE_END.split(paragraph) if s)
    return out


def is_korean_source(path: str) -> bool:
    parts = path.split(os.sep)
    if path.endswith(".pdf"):
        return "texlive-doc" in parts
    if path.endswith((".html", ".xhtml", ".page")):
        return "ko" in parts or ".ko." in path
    return os.path.basename(path) in ("TUTORIAL.ko", "tutor.ko.utf-8")


def is_english_source(path: str) -> bool:
    return path.endswith(".html") and not any(
        f"/{lang}/" in path or f".{lang}." in path
        for lang in ("de", "es", "fr", "it", "ja", "ko", "pt", "ru", "zh", "nl", "pl", "sv"))


def sources(root: str, language: str) -> list[str]:
    """The documentation files in that language under an extracted package tree, sorted."""
    wanted = is_korean_source if language == "ko" else is_english_source
    return sorted(p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                  if os.path.isfile(p) and wanted(p))


def fetch_packages(debs: str, packages) -> None:
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in packages if not glob.glob(os.path.join(debs, f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)


def build(debs: str, out: str, language: str = "ko") -> dict:
    fetch_packages(debs, PACKAGES[language])
    keep = KEEP[language]
    seen: set[str] = set()
    documents = lines = 0
    with tempfile.TemporaryDirectory() as tree, open(out, "w", encoding="utf-8") as sink:
        for package in PACKAGES[language]:
            for deb in sorted(glob.glob(os.path.join(debs, f"{package}_*.deb"))):
                subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
        for path in sources(tree, language):
            if path.endswith(".pdf") and not shutil.which("pdftotext"):
                continue
            text = source_text(path)
            kept = []
            for sentence in sentences(text):
                if keep(sentence) and sentence not in seen:
                    seen.add(sentence)
                    kept.append(sentence)
            if kept:
                sink.write("\n".join(kept) + "\n\n")
                documents += 1
                lines += len(kept)
    return {"documents": documents, "lines": lines, "bytes": os.path.getsize(out)}


@dataclasses.dataclass(frozen=True)
class ProseSettings(cli.Settings):
    out: str = cli.flag(help="the corpus file written")
    debs: str | None = cli.flag(None, help="folder of .deb files (downloaded if missing)")
    language: str = cli.flag("ko", choices=sorted(PACKAGES))


def build_corpus(args: ProseSettings) -> int:
    if not shutil.which("dpkg-deb") or not shutil.which("apt-get"):
        print("error: needs apt-get and dpkg-deb (Debian or Ubuntu)", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    debs = args.debs or os.path.join(os.path.dirname(os.path.abspath(args.out)), "debs")
    info = build(debs, args.out, args.language)
    print(f"{args.out}: {info['documents']} documents, {info['lines']} lines, "
          f"{info['bytes']:,} bytes")
    return 0


def main(argv=None) -> int:
    return cli.run_command(ProseSettings, build_corpus, argv,
                           description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
