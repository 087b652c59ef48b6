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


def output_dir_problem(path: str, overwrite: bool, flag: str = "--output_dir") -> str | None:
    """What stops a command from writing the folder `path` (checked before any work), in
    one line naming the flag, or None: a file there, a finished folder without --overwrite,
    or a parent that cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{flag} {path} is a file, not a directory"
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        return f"{flag} {path} is not empty; pass --overwrite to replace it"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        return f"{flag} {path}: cannot write into {parent}"
    return None


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
