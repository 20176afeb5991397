"""One driver per sweep: a live `sweep` / `resume` holds a lock in the sweep's folder.

Local folders use an OS lock (`flock`), released by the kernel when the process ends however
it ends, so a killed driver never blocks the next one. Storage URIs (s3://...) have no such
lock: a lock file naming the host and process is written there, and taken over when that
process is known to be gone (same host) or the file is older than `STALE_HOURS`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow.fs as pafs

from fmnist_ray.errors import UserError
from fmnist_ray.results.storage import is_uri

LOCK_FILE = ".driver.lock"
STALE_HOURS = 24.0


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _refusal(uri: str, holder: dict) -> UserError:
    since = datetime.fromtimestamp(holder.get("since", 0)).strftime("%Y-%m-%d %H:%M")
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    return UserError(f"{uri}: this sweep is running already (process {pid} on {host}, since "
                     f"{since}); wait for it to end or stop it (Ctrl-C there, or kill {pid}), "
                     f"then run this again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_no_live_driver(uri: str) -> None:
    """Refuse at once, before any work, when another process drives the sweep at `uri`."""
    with driver_lock(uri, create=False):
        pass


@contextlib.contextmanager
def driver_lock(uri: str, create: bool = True) -> Iterator[None]:
    """Hold the sweep at `uri` for this process; refuse with one line if another holds it."""
    if is_uri(uri):
        with _remote_lock(uri, create):
            yield
        return
    folder = Path(uri)
    if not create and not (folder / LOCK_FILE).is_file():
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            raise _refusal(uri, holder) from None
        if create:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(_holder()))
            handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _remote_lock(uri: str, create: bool) -> Iterator[None]:
    fs, root = pafs.FileSystem.from_uri(uri)
    path = f"{root}/{LOCK_FILE}"
    try:
        with fs.open_input_file(path) as handle:
            holder = json.loads(handle.read().decode() or "{}")
    except (FileNotFoundError, OSError, json.JSONDecodeError):
        holder = None
    if holder:
        here = holder.get("host") == socket.gethostname()
        stale = time.time() - holder.get("since", 0) > STALE_HOURS * 3600
        if here and _alive(int(holder.get("pid", 0))):
            raise _refusal(uri, holder)
        if not here and not stale:
            raise UserError(f"{uri}: this sweep may be running (process {holder.get('pid')} on "
                            f"{holder.get('host')}); if it is not, delete {uri}/{LOCK_FILE} "
                            f"and run this again")
    if not create:
        yield
        return
    with fs.open_output_stream(path) as stream:
        stream.write(json.dumps(_holder()).encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fs.delete_file(path)
