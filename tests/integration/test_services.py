"""The watch over the services a test starts: a dead or failing service fails the test at
once, with its last stderr lines."""

import os
import shutil
import sys
import time

import pytest

from tests.conftest import REPO
from tests.services import Service, interpreter_env, wait_for


def _service(code):
    return Service("the stand-in", [sys.executable, "-c", code], cwd=REPO)


def test_a_service_that_logs_an_error_fails_the_wait_at_once_with_its_stderr():
    service = _service("import sys, time\n"
                       "print('starting', file=sys.stderr, flush=True)\n"
                       "print('ModuleNotFoundError: no module named x', file=sys.stderr,"
                       " flush=True)\n"
                       "time.sleep(60)")
    started = time.monotonic()
    try:
        with pytest.raises(pytest.fail.Exception) as failure:
            wait_for(lambda: False, [service], 60, "never")
    finally:
        service.stop()
    assert time.monotonic() - started < 10
    assert "starting\nModuleNotFoundError: no module named x" in str(failure.value)


def test_a_service_that_dies_fails_the_wait_with_its_exit_code():
    service = _service("import sys; sys.exit(3)")
    try:
        with pytest.raises(pytest.fail.Exception, match="exited with code 3"):
            wait_for(lambda: False, [service], 60, "never")
    finally:
        service.stop()


def test_a_bare_python_in_a_services_environment_is_this_interpreter(monkeypatch):
    monkeypatch.setenv("PATH", "/nowhere")
    found = shutil.which("python", path=interpreter_env()["PATH"])
    assert found is not None
    assert os.path.dirname(found) == os.path.dirname(sys.executable)
