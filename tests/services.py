"""Processes a test starts beside itself (Beam's job service, its worker pool) and watches.

A service that dies, or logs an error, fails the test at once with its last stderr lines:
without the watch, a worker pool whose workers cannot start leaves the job waiting for a
gRPC deadline minutes later, and the cause is never shown.
"""

import collections
import os
import re
import subprocess
import sys
import threading
import time

import pytest

# Lines a healthy service never writes: a traceback, an exception's own line, a log record
# at ERROR or above (absl and Python logging both write the level as a word).
ERROR_LINE = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b"
                        r"|\b(ERROR|CRITICAL|FATAL)\b")


def interpreter_env() -> dict:
    """This process's environment with the running interpreter's folder first on PATH.

    Beam's worker pool starts each SDK worker as a bare `python -c ...`: the first `python`
    on PATH, not the pool's own interpreter. With a virtual environment's interpreter run by
    its path (not activated), that is another Python without Beam."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


class Service:
    """A started process whose stderr is read into a ring of its last lines by a thread."""

    def __init__(self, name: str, argv: list[str], cwd: str, keep_lines: int = 40):
        self.name = name
        self.process = subprocess.Popen(argv, cwd=cwd, env=interpreter_env(), text=True,
                                        errors="replace", stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        self.lines = collections.deque(maxlen=keep_lines)
        self.error_line = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if self.error_line is None and ERROR_LINE.search(line):
                self.error_line = line.strip()

    def problem(self) -> str | None:
        """Why this service can no longer be trusted, with its last stderr lines, or None."""
        if self.process.poll() is not None:
            self._reader.join(timeout=5)
            why = f"exited with code {self.process.returncode}"
        elif self.error_line is not None:
            time.sleep(0.5)  # the rest of the traceback
            why = f"logged an error ({self.error_line})"
        else:
            return None
        tail = "\n".join(self.lines)
        return f"{self.name} {why}; its last stderr lines:\n{tail}"

    def stop(self):
        self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)


def wait_for(done, services: list[Service], seconds: float, what: str):
    """Polls `done()` until it is true; fails the test at once if a service has a problem,
    or after `seconds`."""
    deadline = time.monotonic() + seconds
    while not done():
        for service in services:
            if (problem := service.problem()) is not None:
                pytest.fail(problem, pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not done after {seconds:.0f} s", pytrace=False)
        time.sleep(0.2)
