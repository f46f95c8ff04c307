"""Keeping the server's console readable under load: repeated warnings are rate-limited.

Under a burst, waitress warns "Task queue depth is N" for every request that has to wait for a
thread and "total open connections reached the connection limit" each time the limit is hit:
thousands of lines in half a minute, burying everything else. ``RepeatFilter`` lets the first
record of each kind through, holds back the repeats for ``window`` seconds, and says how many it
held back on the next one it lets through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    """At most one record per (logger, message template) every ``window`` seconds.

    Records are told apart by their template (``record.msg``), not their text, so "Task queue
    depth is 3" and "... is 4" are the same kind. Errors and worse always pass.
    """

    def __init__(self, window: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], list] = {}  # kind -> [passed_at, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        kind = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            held = seen[1] if seen is not None else 0
            self._kinds[kind] = [now, 0]
        if held:
            # Add the count to the text itself, so any formatter shows it.
            record.msg = f"{record.getMessage()} (and {held} more like it since the last shown)"
            record.args = None
        return True
