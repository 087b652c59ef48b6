

import subprocess
import sys

import pytest

from bertdata.tokenizer import SentencePieceTokenizer


@pytest.mark.slow
def test_cli_trains_and_reports_missing_input(tmp_path, sample_corpus):
    prefix = tmp_path / "cli"
    ok = subprocess.run([sys.executable, "-m", "bertdata.tokenizer", f"--input={sample_corpus}",
                         f"--model_prefix={prefix}", "--vocab_size=600"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert SentencePieceTokenizer.load(f"{prefix}.model").vocab_size == 607
    assert (tmp_path / "cli.vocab").read_text().splitlines()[6].startswith("[MASK]")
    bad = subprocess.run([sys.executable, "-m", "bertdata.tokenizer",
                          f"--input={tmp_path / 'nope.txt'}", f"--model_prefix={prefix}",
                          "--vocab_size=600"], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope.txt" in bad.stderr
