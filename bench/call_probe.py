"""``callapp call`` with a probe: the real headless app, plus per-frame arrival times.

    python -m bench.call_probe --probe-json OUT [--stamp] -- <callapp call arguments>

Runs :func:`callapp.call.cli.main` unchanged in this process, after wrapping
two things from the outside (nothing in ``callapp/`` is modified):

* the CLI runner's remote-frame callback, to record when each decoded remote
  frame reached the app (``time.monotonic()``) and, with ``--stamp``, to read
  the barcode of :mod:`bench.stamp` out of it;
* with ``--stamp``, the session's video source: :class:`bench.stamp.StampTrack`
  at the configured size and rate instead of the plain test pattern.

At exit it writes ``OUT``: ``{"arrivals": [...], "stamps": [[index, capture,
arrival], ...], "unreadable": N}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.call_probe")
    parser.add_argument("--probe-json", type=Path, required=True)
    parser.add_argument("--stamp", action="store_true", help="send and read stamped frames")
    parser.add_argument("call_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    call_args = args.call_args[1:] if args.call_args[:1] == ["--"] else args.call_args

    from callapp.call import cli, sources

    arrivals: list[float] = []
    stamps: list[tuple[int, float, float]] = []
    unreadable = [0]

    if args.stamp:
        from bench.stamp import StampTrack, read

        def open_source(config: Any, on_notice: Any = None) -> Any:
            return StampTrack(config.width, config.height, config.fps)

        sources.open_source = open_source
    original = cli.Runner.on_remote_frame

    def on_remote_frame(self: cli.Runner, frame: Any) -> None:
        now = time.monotonic()
        arrivals.append(now)
        if args.stamp:
            found = read(frame)
            if found is None:
                unreadable[0] += 1
            else:
                stamps.append((found[0], found[1], now))
        original(self, frame)

    cli.Runner.on_remote_frame = on_remote_frame  # type: ignore[method-assign]
    try:
        return cli.main(call_args)
    finally:
        data = {"arrivals": arrivals, "stamps": stamps, "unreadable": unreadable[0]}
        args.probe_json.write_text(json.dumps(data))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
