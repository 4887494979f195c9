"""hippynn's console output sent to the debug log (both training engines and their set-up).

hippynn prints progress bars and per-epoch tables to stdout; a training job's log should
hold our lines only. :func:`quiet_hippynn` turns the progress bars off and
:func:`hippynn_to_log` redirects what hippynn prints to ``logging.debug``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger("aedistill.hippynn")


class LogStream:
    """File-like object sending hippynn's prints to the debug log."""

    def write(self, s: str) -> int:
        if s.strip():
            log.debug(s.rstrip())
        return len(s)

    def flush(self) -> None:
        pass


def quiet_hippynn() -> None:
    """No progress bars from hippynn."""
    import hippynn

    with contextlib.suppress(Exception):
        hippynn.settings.PROGRESS = None


@contextlib.contextmanager
def hippynn_to_log() -> Iterator[None]:
    """Within the block, what is printed to stdout goes to the debug log."""
    with contextlib.redirect_stdout(LogStream()):
        yield
