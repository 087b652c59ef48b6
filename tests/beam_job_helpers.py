"""What test_beam_job.py's unit and integration tests share."""

import tensorflow as tf

from beam_jobs import create_pretraining_data as job
from bertdata.corpus import documents_from_lines
from tests.conftest import FNAPI


def read_records(pattern):
    files = sorted(tf.io.gfile.glob(pattern))
    comp = "GZIP" if files and files[0].endswith(".gz") else ""
    return [r.numpy() for f in files for r in tf.data.TFRecordDataset(f, comp)]


def corpus_file(tmp_path, lines, name="c.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_job(tmp_path, corpus, spm_model, *flags, out="out"):
    output = str(tmp_path / out)
    stats = job.run_from_flags([f"--input={corpus}", f"--output_dir={output}",
                                f"--spm_model={spm_model}", *flags, *FNAPI])
    return output, stats


def multi_line_documents(sample_lines, n):
    docs = list(documents_from_lines(sample_lines))
    return [doc for doc in docs if len(doc) >= 2][:n]


def write_documents(path, docs):
    path.write_text("\n\n".join("\n".join(doc) for doc in docs) + "\n", encoding="utf-8")
    return str(path)
