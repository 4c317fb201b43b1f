"""A progress bar: tqdm when it is installed (an optional extra), else a small built-in one."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class SimpleBar:
    """A one-line text bar on a stream, redrawn at most ~10 times a second.

    Same calls as the subset of tqdm used here: update(n), set_postfix_str(s), close().
    """

    def __init__(self, total: int, desc: str = "", file: TextIO | None = None, width: int = 24) -> None:
        self.total, self.desc, self.width = max(int(total), 1), desc, width
        self.file = file if file is not None else sys.stderr
        self.n, self.postfix = 0, ""
        self._start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= 0.1 or self.n >= self.total:
            self._last = now
            self._draw(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def _draw(self, now: float) -> None:
        done = min(self.n / self.total, 1.0)
        filled = int(done * self.width)
        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        line = (f"\r{self.desc} |{'#' * filled}{'.' * (self.width - filled)}| {self.n}/{self.total} "
                f"[{elapsed:.0f}s, {rate:.1f} it/s] {self.postfix}")
        self.file.write(line)
        self.file.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        self.file.write("\n")
        self.file.flush()


def progress_bar(total: int, desc: str = "", enabled: bool = True, file: TextIO | None = None):
    """A bar with update/set_postfix_str/close: tqdm if importable, else SimpleBar; None if disabled."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return SimpleBar(total, desc, file)
    return tqdm(total=total, desc=desc, file=file if file is not None else sys.stderr,
                leave=True, dynamic_ncols=True)
