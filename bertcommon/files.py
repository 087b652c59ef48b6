"""Writing outputs so that nothing that looks finished is ever partial, and reading back the
JSON files that a person or another tool may have changed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid

from bertcommon.errors import BertpipeError


class BadFile(BertpipeError, ValueError):
    """A file that cannot be read as what it should be; the message names it."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: str, *, expect: type | None = dict, opener=open):
    """The parsed JSON of PATH (opened with OPENER(path, "rb"): open, or a filesystem's),
    of type EXPECT unless it is None. BadFile names PATH when it cannot be read, is not
    UTF-8, is not strict JSON (NaN and Infinity are not) or is of another type."""
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadFile(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_json(raw, path, expect=expect)


def parse_json(raw: bytes | str, path: str, *, expect: type | None = dict):
    """`read_json` of a file's content already read (RAW), named PATH in errors."""
    try:
        value = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw,
                           parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise BadFile(f"{path}: not JSON ({str(e)[:80]})") from None
    if expect is not None and not isinstance(value, expect):
        raise BadFile(f"{path}: holds a JSON {type(value).__name__}, not "
                      f"{'an object' if expect is dict else expect.__name__}")
    return value


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


# What atomic_path names its temporary and moved-aside paths with.
_TEMPORARY, _REPLACED = ".tmp-", ".old-"


def remove_leftovers(folder: str) -> None:
    """Removes what a killed atomic_path left in FOLDER: a half-written output, or an old
    folder moved aside while a new one took its name."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith((_TEMPORARY, _REPLACED)):
            remove(os.path.join(folder, name))


@contextlib.contextmanager
def atomic_path(final: str):
    """Yields a temporary path beside `final` (write a file or a folder there); when the
    block ends without an error it takes `final`'s name, replacing what was there, else it
    is removed. The temporary name starts with '.tmp-', so it never looks finished, is
    unique, so two writers never share it, and ends like `final` (Keras and matplotlib choose
    the format by the extension)."""
    parent, name = os.path.split(os.path.abspath(final))
    tmp = os.path.join(parent, f"{_TEMPORARY}{uuid.uuid4().hex[:8]}-{name}")
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(final):
            # A folder cannot replace a folder in one rename: move the old one aside first.
            old = os.path.join(parent, f"{_REPLACED}{name}-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            remove(old)
        else:
            os.replace(tmp, final)
    finally:
        remove(tmp)


def check_free_space(folder: str, needed: int) -> None:
    """Raises OSError(ENOSPC) naming FOLDER when fewer than NEEDED bytes are free there: for
    writers that cannot survive a full disk themselves (HDF5, under Keras' .weights.h5 files,
    takes the process down when a write fails), so they only start where they fit."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device ({free:,} bytes free, about "
                                    f"{needed:,} needed)", folder)


def write_bytes(path: str, data: bytes) -> None:
    """Writes PATH whole (through `atomic_path`): a reader sees the old file or the new one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    """`write_bytes` of TEXT in UTF-8."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, value, **dump_options) -> None:
    """`write_text` of VALUE as indented JSON, non-ASCII text kept readable."""
    options = {"indent": 2, "ensure_ascii": False} | dump_options
    write_text(path, json.dumps(value, **options) + "\n")


class FolderInUse(RuntimeError):
    """Another live run holds the folder's lock; the message names it."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(folder: str, flag: str):
    """Holds FOLDER/.lock (this process's id and host) while the block runs, so that two runs
    never share a folder; a second one gets FolderInUse naming the first. A lock whose
    process is gone (killed, crashed) is taken over, so a dead run never holds a folder. Only
    local folders are locked (a bucket path has no process to ask)."""
    import socket

    if "://" in folder:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None:
                raise FolderInUse(f"{flag} {folder} is in use by another run (process "
                                  f"{holder['pid']} on {holder['host']}); wait for it to end "
                                  "or use another folder") from None
            remove(path)  # its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        remove(path)


# Process ids are below 2**22 on Linux; anything larger was not written by a run.
_MAX_PID = 2**22


def _lock_holder(path: str) -> dict | None:
    """The live process holding a lock file, or None when it is gone (or unreadable)."""
    import socket
    import time

    try:
        holder = read_json(path)
        pid = holder["pid"]
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < _MAX_PID \
                or not isinstance(holder.get("host"), str):
            raise ValueError(f"pid {pid!r}, host {holder.get('host')!r}")
    except (BadFile, KeyError, ValueError):
        # Being written by a run that just took it, or left half-written by one killed then.
        try:
            fresh = time.time() - os.path.getmtime(path) < 5
        except OSError:
            return None
        return {"pid": "?", "host": "?"} if fresh else None
    if holder.get("host") != socket.gethostname():
        return holder  # another machine's: cannot be asked, so it is held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return holder
