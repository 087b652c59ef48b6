"""Progress of a local run: workers leave running totals in a folder the launcher reads.

Local runners (in-process, multi-process, Flink or Spark in local mode with LOOPBACK
workers) run their workers on the launcher's machine, but do not report Beam counters until
the pipeline ends. So each worker process keeps its running totals in memory and writes them,
at most once a second, to its own file in a folder the launcher created; the launcher sums
the files on a timer and logs one line. Totals count planned input bytes, bytes read and
examples built; retried bundles count twice, so the figures are an estimate (stats.json
holds the exact counts). Runners whose workers live elsewhere (Dataflow) report progress in
their own UI instead.
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import os
import threading
import time
import uuid

from bertcommon.files import BadFile, read_json, write_text

log = logging.getLogger("beam_jobs.progress")

PLANNED_BYTES = "planned_bytes"
READ_BYTES = "read_bytes"
EXAMPLES = "examples"

_PROCESS = uuid.uuid4().hex[:12]  # this worker process's file name
_lock = threading.Lock()
_totals: dict[str, collections.Counter] = {}
_written_at: dict[str, float] = {}


class ProgressChannel:
    """Picklable handle on the folder; `add` is called by DoFns, `totals` by the launcher."""

    def __init__(self, directory: str):
        self.directory = directory

    def add(self, **counts: int) -> None:
        with _lock:
            _totals.setdefault(self.directory, collections.Counter()).update(counts)
            due = time.monotonic() - _written_at.get(self.directory, 0.0) >= 1.0
        if due:
            self.flush()

    def flush(self) -> None:
        with _lock:
            totals = dict(_totals.get(self.directory, {}))
            _written_at[self.directory] = time.monotonic()
        if not totals or not os.path.isdir(self.directory):
            return
        path = os.path.join(self.directory, f"{_PROCESS}.json")
        # The launcher never reads a half-written file.
        write_text(path, json.dumps(totals))

    def totals(self) -> collections.Counter:
        out = collections.Counter()
        for path in glob.glob(os.path.join(self.directory, "*.json")):
            try:
                out.update(read_json(path))
            except (BadFile, TypeError, ValueError):
                continue  # replaced while being read: next time
        return out


def describe(totals: collections.Counter, elapsed: float, started_examples_at: float | None
             ) -> str:
    """One progress line: MB read of the total, examples, rate, time left."""
    done, total = totals[READ_BYTES] / 1e6, totals[PLANNED_BYTES] / 1e6
    examples = totals[EXAMPLES]
    if not total:
        return "matching input files and planning byte ranges..."
    line = f"{done:,.1f} of {total:,.1f} MB read ({100 * done / total:.0f}%), {examples:,} examples"
    if examples and started_examples_at is not None and elapsed > started_examples_at:
        busy = elapsed - started_examples_at
        line += f", {examples / busy:,.0f} examples/s"
        if 0 < done < total:
            left = busy * (total - done) / done
            line += f", about {int(left) // 60}:{int(left) % 60:02d} left"
    return line


class ProgressReporter:
    """Logs the channel's totals every `interval` seconds while the pipeline runs."""

    def __init__(self, channel: ProgressChannel, interval: float = 10.0):
        self.channel = channel
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bertpipe-progress",
                                        daemon=True)
        self._started = 0.0
        self._first_examples: float | None = None

    def __enter__(self):
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        if exc_type is None:
            self._report()  # a last line, so even a short run shows its totals

    def _run(self):
        while not self._stop.wait(self.interval):
            self._report()

    def _report(self):
        totals = self.channel.totals()
        elapsed = time.monotonic() - self._started
        if totals[READ_BYTES] and self._first_examples is None:
            self._first_examples = max(0.0, elapsed - self.interval)
        log.info("%s", describe(totals, elapsed, self._first_examples))
