"""Progress of long commands (`ledger verify`, `site rebuild`, `feeds rebuild`, `audit`), on
standard error so that standard output stays clean for the result (text, CSV, JSON).

On a terminal it is a tqdm bar, shown only once the work has taken half a second. Elsewhere (a
log, cron, CI) it is plain lines, never a carriage return: `ledger verify: 50000/306191 events
(16%)` when `interval` seconds have passed since the last line or another tenth of a known total
is done, and a final `ledger verify: 306191/306191 events in 12.3 s` when the work ends without
an error (an error says for itself where it stopped).

    with progress(total, "ledger verify", unit="events") as bar:
        ...
        bar.advance(len(batch))

`advance` may be called from another thread (a replay in `asyncio.to_thread`) and for every
single item: it only adds to a counter unless a line or a redraw is due.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

INTERVAL = 2.0  # seconds between plain lines, at most (besides the tenths of a known total)
REDRAW = 0.1  # seconds between handing the count to the bar on a terminal
DELAY = 0.5  # a bar appears only once the work has taken this long


class _Bar(tqdm):  # type: ignore[misc]
    monitor_interval = 0  # no monitor thread: the bar is redrawn from `advance`


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """How far a long piece of work has got; a context manager. Use `progress()` to make one."""

    def __init__(
        self,
        total: int | None,
        what: str,
        *,
        unit: str = "items",
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = INTERVAL,
        delay: float = DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.what, self.unit = total, what, unit
        self.stream = sys.stderr if stream is None else stream
        self.count = 0
        self._interval, self._clock = interval, clock
        self._lock = threading.Lock()
        self._started = clock()
        self._closed = False
        self._bar: tqdm | None = None
        if is_terminal(self.stream) if tty is None else tty:
            self._bar = _Bar(
                total=total, desc=what, unit=unit, file=self.stream, delay=delay,
                dynamic_ncols=True, mininterval=REDRAW, leave=True,
            )  # fmt: skip
        self._shown = 0  # the count the bar holds
        self._due = self._started + (REDRAW if self._bar is not None else interval)
        self._tenth = 1  # plain lines: the next tenth of the total to report

    def advance(self, n: int = 1) -> None:
        """`n` more are done."""
        with self._lock:
            self.count += n
            if self._closed:
                return
            now = self._clock()
            if self._bar is not None:
                if now >= self._due:
                    self._bar.update(self.count - self._shown)
                    self._shown, self._due = self.count, now + REDRAW
            elif (now >= self._due or self._tenth_reached()) and not self._all_done():
                self._line(self._so_far())
                self._due = now + self._interval

    def close(self, ok: bool = True) -> None:
        """The work has ended (with an error unless `ok`: then no final plain line)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.update(self.count - self._shown)
                self._shown = self.count
                self._bar.close()
            elif ok:
                elapsed = self._clock() - self._started
                self._line(f"{self._counted()} in {elapsed:.1f} s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(ok=exc_type is None)

    def _tenth_reached(self) -> bool:
        if not self.total or self._tenth >= 10 or self.count * 10 < self._tenth * self.total:
            return False
        self._tenth = min(10, self.count * 10 // self.total + 1)
        return True

    def _all_done(self) -> bool:  # the final line will say it
        return self.total is not None and self.count >= self.total

    def _counted(self) -> str:
        if self.total is None:
            return f"{self.count} {self.unit}"
        return f"{self.count}/{self.total} {self.unit}"

    def _so_far(self) -> str:
        if not self.total:
            return self._counted()
        return f"{self._counted()} ({100 * self.count // self.total}%)"

    def _line(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a broken stderr must not stop the work
            print(f"{self.what}: {text}", file=self.stream, flush=True)


def progress(
    total: int | None,
    what: str,
    *,
    unit: str = "items",
    stream: TextIO | None = None,
) -> Progress:
    """Progress of `what` over `total` `unit` (None: unknown), on `stream` (default: standard
    error, as it is when called): a bar on a terminal, plain lines otherwise."""
    return Progress(total, what, unit=unit, stream=stream)
