"""Progress a person can follow: a tqdm bar on a terminal, one plain line per interval elsewhere.

Long work (a CPU training epoch, a corpus of recordings) shows items done, rate and ETA. When
standard error is not a terminal (CI, ``nohup``, a log file) a bar redrawn hundreds of times
would fill the log with carriage returns, so :class:`Progress` prints one line every
``interval_s`` seconds instead (and one at the end)::

    epoch 3/20: 120/150 batches (80 %), 2.4 batches/s, 3840 rec, 77 rec/s, ETA 0:00:12

``BIOSIG_PROGRESS=bar|lines|off`` forces a mode; ``BIOSIG_PROGRESS_INTERVAL`` sets the seconds
between lines (default 30).
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["Progress", "track", "progress_mode", "format_duration"]


def progress_mode(enabled: bool = True, stream=None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"``: the environment's choice, else a bar on a terminal."""
    if not enabled:
        return "off"
    forced = os.environ.get("BIOSIG_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (``?`` for an unknown duration)."""
    if seconds is None or not seconds == seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Count work done and show it (see the module docstring).

    Parameters
    ----------
    total : int or None
        Steps expected (None: unknown, no ETA).
    desc : str
        What is being done (``"epoch 3/20"``).
    unit : str
        What a step is (``"batch"``).
    enabled : bool
        False shows nothing (e.g. on ranks other than 0).
    interval_s : float, optional
        Seconds between lines in line mode (default ``BIOSIG_PROGRESS_INTERVAL`` or 30).
    items_unit : str, optional
        A second count shown with its rate (e.g. recordings per batch: ``"rec"``).
    final_line : bool
        In line mode, always print the closing line (for progress the user asked for), not only
        after work that took longer than an interval.
    """

    def __init__(self, total: int | None, *, desc: str, unit: str = "it", enabled: bool = True,
                 interval_s: float | None = None, items_unit: str | None = None, stream=None,
                 final_line: bool = False):
        self.total, self.desc, self.unit, self.items_unit = total, desc, unit, items_unit
        self.stream = sys.stderr if stream is None else stream
        self.mode = progress_mode(enabled, self.stream)
        if interval_s is None:
            interval_s = float(os.environ.get("BIOSIG_PROGRESS_INTERVAL", "30"))
        self.interval_s = float(interval_s)
        self.final_line = bool(final_line)
        self.n = 0
        self.items = 0
        self.t0 = self._last = time.perf_counter()
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm  # ~0.1 s, only when a bar is drawn
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False,
                             dynamic_ncols=True)

    def update(self, n: int = 1, *, items: int = 0, **postfix) -> None:
        """``n`` more steps (and ``items`` more of ``items_unit``); ``postfix`` is shown after."""
        self.n += n
        self.items += items
        if self._bar is not None:
            self._bar.update(n)
            if postfix or self.items_unit:
                extra = dict(postfix)
                if self.items_unit:
                    extra[f"{self.items_unit}/s"] = f"{self.rate_items:.1f}"
                self._bar.set_postfix(extra, refresh=False)
        elif self.mode == "lines":
            now = time.perf_counter()
            if now - self._last >= self.interval_s:
                self._last = now
                self._line(postfix)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def rate_items(self) -> float:
        return self.items / max(self.elapsed_s, 1e-9)

    def _line(self, postfix: dict, final: bool = False) -> None:
        el = self.elapsed_s
        rate = self.n / max(el, 1e-9)
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f} %)"
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.items_unit:
            parts.append(f"{self.items} {self.items_unit}, {self.rate_items:.1f} "
                         f"{self.items_unit}/s")
        if final:
            parts.append(f"took {format_duration(el)}")
        elif self.total:
            parts.append(f"ETA {format_duration((self.total - self.n) / rate if rate else None)}")
        parts += [f"{k} {v}" for k, v in postfix.items()]
        print(f"{self.desc}: " + ", ".join(parts), file=self.stream, flush=True)

    def close(self, **postfix) -> None:
        """End the display (line mode prints a last line when the work took over an interval)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and (self.final_line or self.elapsed_s >= self.interval_s):
            self._line(postfix, final=True)
        self.mode = "off"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def track(iterable, *, desc: str, unit: str = "it", total: int | None = None,
          enabled: bool = True):
    """Iterate over ``iterable`` with a :class:`Progress` (``total`` defaults to its length)."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    bar = Progress(total, desc=desc, unit=unit, enabled=enabled)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
