"""What the package's commands print: their own log lines, and little of their libraries'.

Importing Beam or TensorFlow may configure the root logger before a command runs, which
makes `logging.basicConfig` a no-op. So the commands configure the package's own loggers
(with their own handler, not propagating to the root) and turn the libraries' loggers down to
warnings. `--verbosity=debug` brings the libraries' INFO lines back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

PACKAGE_LOGGERS = ("bertdata", "bertmodel", "beam_jobs", "bertpipe")
LIBRARY_LOGGERS = ("apache_beam", "tensorflow", "absl", "keras", "h5py", "matplotlib",
                   "google", "grpc", "urllib3", "PIL")
# Beam's runner logs a failed bundle at ERROR with the worker's traceback; the commands
# report the same failure in one line, so that logger stays silent unless debugging.
REPEATS_FAILURES = ("apache_beam.runners",)
VERBOSITIES = ("warning", "info", "debug")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (tests and notebooks replace
    it; a handler holding an old one would write to a closed stream)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_configured: list[str] = []  # the verbosity a command set, if any


def configured_verbosity() -> str | None:
    """The --verbosity of the command that called configure(); None in library use."""
    return _configured[-1] if _configured else None


def configure(verbosity: str = "info") -> None:
    """Sends the package's log lines to stderr and quiets the libraries' (unless debug)."""
    if verbosity not in VERBOSITIES:
        raise ValueError(f"--verbosity must be one of {VERBOSITIES}, got {verbosity!r}")
    _configured[:] = [verbosity]
    level = {"warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level[verbosity])
        logger.propagate = False
    library_level = logging.INFO if verbosity == "debug" else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    for name in REPEATS_FAILURES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity == "debug"
                                         else logging.CRITICAL)


@contextlib.contextmanager
def root_logger_left_alone():
    """Imports inside this block cannot configure the root logger. Beam's modules call
    `logging.warning` when optional Google Cloud clients are missing (the install without
    the dataflow extra), which gives the root logger a stderr handler: the console then gets
    that line, and every later INFO line of any library."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        if guard is not None:
            root.removeHandler(guard)


@contextlib.contextmanager
def child_processes_quiet():
    """Child processes started in this block write their stderr to /dev/null, while this
    process's own log lines still reach the console: Beam's SDK worker processes configure
    their own logging and would fill it with theirs (and repeat a failure's traceback)."""
    sys.stderr.flush()
    console = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    own = sys.stderr
    os.dup2(devnull, 2)
    sys.stderr = os.fdopen(os.dup(console), "w", buffering=1, encoding="utf-8",
                           errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = own
        os.dup2(console, 2)
        os.close(console)
        os.close(devnull)


@contextlib.contextmanager
def _file_descriptor_2_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly(verbosity: str = "info"):
    """Imports TensorFlow without its C++ start-up lines, unless the user asked for them:
    TF_CPP_MIN_LOG_LEVEL set to 0 or 1, or debug output.

    Some of those lines (oneDNN, CUDA stubs) are printed while the shared libraries load,
    before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so the import itself runs with file
    descriptor 2 pointed at /dev/null; Python errors still surface once it is restored.
    Level 3 (set when the user set none) also hides the `failed call to cuInit` error every
    CPU-only machine prints.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if "tensorflow" in sys.modules or verbosity == "debug" or level in ("0", "1"):
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _file_descriptor_2_silenced():
        import tensorflow as tf
    return tf
