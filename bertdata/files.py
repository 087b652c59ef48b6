"""Writing outputs so that nothing that looks finished is ever partial."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid


def remove(path: str) -> None:
    """Removes a file or a folder tree; nothing if there is none."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(final: str):
    """Yields a temporary path beside `final` (write a file or a folder there); when the
    block ends without an error it takes `final`'s name, replacing what was there, else it
    is removed. The temporary name starts with '.tmp-', so it never looks finished, and is
    unique, so two writers never share it."""
    parent, name = os.path.split(os.path.abspath(final))
    tmp = os.path.join(parent, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(final):
            # A folder cannot replace a folder in one rename: move the old one aside first.
            old = os.path.join(parent, f".old-{name}-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            remove(old)
        else:
            os.replace(tmp, final)
    finally:
        remove(tmp)
