"""Static files for the channels that write them (website, feeds): atomic writes, locks, errors.

Writes go to a temporary file in the same directory, are fsynced, then renamed into place, so a
reader (or a static server) sees the old file or the new one, never half of one. Locks are
`flock`s on a file beside the data: they hold across the worker processes of one machine.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

from channels.base import PermanentError, RetryableError, StateUnreadable

log = logging.getLogger(__name__)

DEFAULT_TITLE = "公共资源配置领域政府信息公开"
RETRYABLE_ERRNOS = frozenset(
    {
        errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY,
        errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK,
    }
)  # fmt: skip
PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
        errno.ENAMETOOLONG, errno.ELOOP,
    }
)  # fmt: skip


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Translate file-system and template errors into `RetryableError` / `PermanentError`."""
    try:
        yield
    except OSError as exc:
        message = f"{what}: {exc}"
        if exc.errno in PERMANENT_ERRNOS:
            raise PermanentError(message) from exc
        raise RetryableError(message) from exc
    except jinja2.TemplateError as exc:
        raise PermanentError(f"{what}: template error: {exc}") from exc


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing); it guards other processes too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` all at once: temp file in the same directory, fsync, rename.

    `durable=False` skips both fsyncs (a bulk rebuild syncs once at the end instead).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the static server must read it
        stamp = _next_mtime(path)
        os.utime(tmp, ns=(stamp, stamp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def _next_mtime(path: Path) -> int:
    """A whole second (in ns), later than the file's current one: nginx's ETag and both servers'
    Last-Modified count whole seconds (aiohttp rounds up, nginx down: on a whole second they
    agree), so a page rewritten within the second it was written still gets new validators.
    In a burst of rewrites the time runs ahead by a second per rewrite, then time catches up."""
    now = int(time.time())
    try:
        before = int(path.stat().st_mtime)
    except FileNotFoundError:
        before = now - 1
    return max(now, before + 1) * 1_000_000_000


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse fsync on a directory.
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# A channel's state directory holds this file while a state file in it is unreadable; its
# rebuild empties the directory. `/readyz` and `/metrics` report it (`broken_states`).
BROKEN = "BROKEN"


@contextlib.contextmanager
def marking_broken(state_dir: Path) -> Iterator[None]:
    """Mark `state_dir` as broken (and say so at ERROR, once) when a state file in it turns out
    unreadable; the error goes on."""
    try:
        yield
    except StateUnreadable as exc:
        marker = state_dir / BROKEN
        if not marker.exists():
            log.error("%s", exc)
            with contextlib.suppress(OSError):  # a full disk must not hide the first error
                write_atomic(marker, str(exc).encode("utf-8"), durable=False)
        raise


def broken_states(state_root: Path) -> dict[str, str]:
    """The channels (by state directory name) whose state is marked unreadable, and why."""
    found = {}
    for marker in sorted(state_root.glob(f"*/{BROKEN}")):
        with contextlib.suppress(OSError):
            found[marker.parent.name] = marker.read_text("utf-8", errors="replace")[:500]
    return found


def site_base_url(settings: Mapping[str, Any]) -> str:
    """`settings["base_url"]` without a trailing slash; ValueError (start-up error) if unusable."""
    base_url = str(settings.get("base_url") or "").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"settings['base_url'] must be an http(s) URL, got {base_url!r}")
    return base_url
