"""The site's files served from memory: its pages and feeds are a few kilobytes each, and
aiohttp's `FileResponse` costs a hand-off to a thread per request (for the stat and the open)
and a `sendfile`; from memory the app answers about half again as many requests a second
(`bench/serve.py`).

Every request still stats the file, so a page rewritten is served at once: its content is read
again when its inode, time or size changed (the website channel replaces files by renaming, so
a new version is a new inode). The validators are `FileResponse`'s — ETag `"<mtime ns in
hex>-<size in hex>"`, Last-Modified from the file's time — and so are the conditional answers:
304 for a matching If-None-Match (weak comparison), or, without one, for an If-Modified-Since
not older than the file. A request with Range, If-Range, If-Match or If-Unmodified-Since, and a
file over `MAX_FILE`, are left to `FileResponse`. Bounded: `MAX_TOTAL` bytes in all, the least
recently used dropped first.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from aiohttp import hdrs, web
from aiohttp.helpers import ETAG_ANY

MAX_FILE = 256 * 1024
MAX_TOTAL = 64 * 1024 * 1024
# Requests whose answer depends on more than "the whole file, or 304": left to FileResponse.
_DELEGATED = (hdrs.RANGE, hdrs.IF_RANGE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE)


class SiteFile(NamedTuple):
    inode: int
    mtime_ns: int
    size: int
    body: bytes

    @property
    def etag(self) -> str:
        return f"{self.mtime_ns:x}-{self.size:x}"

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


class SiteFiles:
    """Regular files under the site directory, kept in memory while they do not change."""

    def __init__(self, max_file: int = MAX_FILE, max_total: int = MAX_TOTAL) -> None:
        self.max_file, self.max_total = max_file, max_total
        self._files: OrderedDict[Path, SiteFile] = OrderedDict()
        self._total = 0

    def get(self, path: Path) -> SiteFile | bool | None:
        """The file at `path`; None when there is no regular file there; False when it is too
        big to keep (serve it from disk)."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        known = self._files.get(path)
        if known is not None and (known.inode, known.mtime_ns, known.size) == (
            st.st_ino,
            st.st_mtime_ns,
            st.st_size,
        ):
            self._files.move_to_end(path)
            return known
        if st.st_size > self.max_file:
            return False
        return self._load(path)

    def _load(self, path: Path) -> SiteFile | bool | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            st = os.fstat(fd)  # what is read is this file, whatever replaced the path since
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > self.max_file:
                return False
            chunks, left = [], st.st_size
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            body = b"".join(chunks)
        finally:
            os.close(fd)
        if len(body) != st.st_size:  # truncated under us: let FileResponse deal with it
            return False
        found = SiteFile(st.st_ino, st.st_mtime_ns, st.st_size, body)
        self._forget(path)
        self._files[path] = found
        self._total += found.size
        while self._total > self.max_total and self._files:
            self._forget(next(iter(self._files)))
        return found

    def _forget(self, path: Path) -> None:
        gone = self._files.pop(path, None)
        if gone is not None:
            self._total -= gone.size


def delegated(request: web.Request) -> bool:
    """Whether the request needs FileResponse (ranges and the rarer preconditions)."""
    return any(name in request.headers for name in _DELEGATED)


def respond(request: web.Request, found: SiteFile, headers: dict[str, str]) -> web.Response:
    """The file, or 304 Not Modified, as FileResponse would answer."""
    tags = request.if_none_match
    if tags is not None:
        unchanged = any(t.value in (found.etag, ETAG_ANY) for t in tags)
    else:
        since = request.if_modified_since
        unchanged = since is not None and found.mtime <= since.timestamp()
    if unchanged:
        response = web.Response(status=304, headers=headers)
    else:
        response = web.Response(body=found.body, headers=headers)
        response.headers[hdrs.ACCEPT_RANGES] = "bytes"
    response.etag = found.etag
    response.last_modified = found.mtime
    return response
