"""A progress bar for loops that take a while, shown only when the output is a terminal (a stage
run by hand); in a job's log file nothing is added, so it keeps one line per epoch."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")
WIDTH = 30  # characters of the bar itself
REDRAW_SECONDS = 0.2  # at most five redraws a second: a terminal write per step would slow a fast loop


def progress_bar(items: Iterable[T], total: int, label: str, stream: TextIO | None = None) -> Iterator[T]:
    """Yield ``items``; on a terminal, redraw ``label [####    ] done/total, seconds left`` on one
    line while they are consumed, and clear that line at the end (so the next printed line, such as
    an epoch's summary, takes its place)."""
    stream = stream or sys.stdout
    if not stream.isatty():
        yield from items
        return
    start = last = time.perf_counter()
    try:
        for done, item in enumerate(items, 1):
            yield item
            now = time.perf_counter()
            if now - last >= REDRAW_SECONDS or done == total:
                last = now
                stream.write("\r" + bar(label, done, total, now - start))
                stream.flush()
    finally:  # also when the loop stops early (a steps budget, a signal)
        stream.write("\r\033[K")  # clear the bar's line
        stream.flush()


def bar(label: str, done: int, total: int, elapsed: float) -> str:
    share = min(done / total, 1.0) if total else 1.0
    filled = round(WIDTH * share)
    left = elapsed / done * (total - done) if done else float("nan")
    return f"{label} [{'#' * filled}{' ' * (WIDTH - filled)}] {done}/{total}, {left:.0f}s left"
