"""What stops a worker: anything that could make it commit an offset past lost work.

Faust acks the message being processed when an agent raises, its default supervisor restarts
the agent on the next message, and a failed produce (a changelog or output write) is only
logged; either way the next commit would step over work that never landed. A worker that
cannot keep the numbers exact exits at once (exit code 1) without committing, and its
replacement resumes from the last committed offset: the per-customer ledgers make that
re-processing exact.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

log = logging.getLogger(__name__)


def stop_worker(what: str, exc: BaseException) -> NoReturn:
    log.critical("%s: %r; exiting without committing, a restart resumes exactly", what, exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(1)
