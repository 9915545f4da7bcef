"""The framework's own limit: a Faust agent that reads the source topics and only decodes.

Run by `bench.run` (step ``faust``) as ``python -m bench.faust_floor --bootstrap B --topics
T1,T2 --expected N --app-id ID``, in its own process (a Faust worker owns its event loop). One
agent, concurrency 1, reads every partition of the topics with ``Stream.take_events`` (as the
cxpulse agents do) and ``orjson.loads`` each value, nothing else; the app has the settings
`pipeline.app.create_app` uses that bear on reading (memory store, no web server, from the
earliest offset). Progress goes to stderr every 5 s. When ``expected`` messages are read it
prints one JSON line ``{"messages": n, "seconds": s}`` (first to last message, start-up
excluded) and stops the worker with SIGTERM, as an operator would.

What it measures: the cost of Faust's consumer, conductor, stream and acks per message on this
machine, the floor under any Faust agent; one cxpulse worker streams every event twice (the
sources, then `cx.events`), so half of this rate bounds it before any work is done.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from typing import Any

import faust
import orjson
from faust.worker import Worker

BATCH_MAX_EVENTS = 2000
BATCH_WITHIN_S = 0.05
PROGRESS_EVERY_S = 5.0


def build(
    bootstrap: str, topics: list[str], expected: int, app_id: str, datadir: str
) -> faust.App:
    app = faust.App(
        app_id,
        datadir=datadir,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
    )
    # raw serializers, as `pipeline.topics` declares them: Faust's default (JSON) would stop
    # at the first message that is not valid JSON (the mix has some)
    source = app.topic(
        *topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    seen = 0
    first: float | None = None
    reported = time.monotonic()

    async def decode(stream: Any) -> None:
        nonlocal seen, first, reported
        async for batch in stream.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_S):
            if first is None:
                first = time.monotonic()
            for event in batch:
                with contextlib.suppress(orjson.JSONDecodeError):
                    orjson.loads(event.message.value or b"")
            seen += len(batch)
            if time.monotonic() - reported >= PROGRESS_EVERY_S:
                reported = time.monotonic()
                print(f"  faust: {seen:,} of {expected:,} read", file=sys.stderr, flush=True)
            if seen >= expected:
                seconds = time.monotonic() - first
                print(orjson.dumps({"messages": seen, "seconds": seconds}).decode(), flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    app.agent(source, name="decode", concurrency=1)(decode)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma list")
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    args = parser.parse_args(argv)
    # Faust makes its data dir in the working directory unless told: a temp one
    with tempfile.TemporaryDirectory(prefix="cxpulse-faust-floor-") as datadir:
        app = build(args.bootstrap, args.topics.split(","), args.expected, args.app_id, datadir)
        # Faust logs to stderr and leaves stdout alone: the result line is all that is on it
        Worker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
