"""Experiment, not part of `python -m bench`: where the relay CPU per message goes.

    .venv/bin/python -m bench.experiments.relay_costs [--rounds 3] [--seconds 4]

Runs the real :class:`~callapp.signaling.server.SignalingServer` in a child
process, saturated by the same load generator as ``bench/signaling.py`` (50
pairs, 32 pings of 1 KiB in flight per pair), in variants that each take one
cost away by patching the server object from the outside:

* ``as_is``: unchanged;
* ``no_metrics``: Prometheus counters replaced by no-ops;
* ``coalesced``: each connection's transport buffers writes and flushes them
  once per event-loop iteration (one ``send()`` for many frames);
* ``both``: the two together.

Variants alternate within each round, so load from other work hits all alike;
the figure is server CPU time per relayed message (median over rounds), which
moves less with contention than throughput does. This patches private parts
of the server and of asyncio's transport: it is a measurement, not a fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from typing import Any

VARIANTS = ("as_is", "no_metrics", "coalesced", "both")


class _NoOp:
    def labels(self, *args: Any, **kwargs: Any) -> _NoOp:
        return self

    def inc(self, *args: Any, **kwargs: Any) -> None:
        return None


def _patch(server: Any, variant: str) -> None:
    if variant in ("no_metrics", "both"):
        metrics = server.metrics
        for name in ("messages_received", "messages_relayed", "errors", "connections_opened"):
            setattr(metrics, name, _NoOp())
    if variant in ("coalesced", "both"):
        original = server._handle_connection

        async def handle(ws: Any) -> None:
            transport = ws.transport
            write = transport.write
            pending: list[bytes] = []
            loop = asyncio.get_running_loop()

            def flush() -> None:
                data = b"".join(pending)
                pending.clear()
                if not transport.is_closing():
                    write(data)

            def buffered(data: bytes) -> None:
                if not pending:
                    loop.call_soon(flush)
                pending.append(bytes(data))

            transport.write = buffered
            await original(ws)

        server._handle_connection = handle


async def _serve(variant: str) -> None:
    from callapp.signaling.server import SignalingServer

    server = SignalingServer(
        "127.0.0.1",
        0,
        rate=1e6,
        burst=1_000_000,
        max_connections_per_address=20_000,
    )
    _patch(server, variant)
    await server.start()
    print(f"listening on {server.url}", flush=True)
    await asyncio.Event().wait()


def _measure(variant: str, seconds: float) -> dict[str, float]:
    from bench.common import PYTHON, CpuMeter, Procs
    from bench.signaling import REFERENCE, _done

    with Procs() as procs:
        server = procs.run(
            [PYTHON, "-m", "bench.experiments.relay_costs", "--serve", variant],
            name=f"server-{variant}",
        )
        _, match = server.wait_line(r"listening on (ws://\S+)")
        options = {
            "target": "callapp",
            "url": match.group(1),
            "mode": "relay",
            "pairs": 50,
            "window": 32,
            "size": 1024,
            "warmup": 1,
            "seconds": seconds,
        }
        gen = procs.run(["node", str(REFERENCE / "loadgen.js"), json.dumps(options)], name="gen")
        gen.wait_line(r'^\{"event":"measuring"', within=60)
        meter = CpuMeter({"server": server.pid})
        meter.start()
        result = _done(gen, within=seconds + 60)
        cpu = meter.stop()["server"]
    rate = float(result["msgs_per_s"])
    return {"msgs_per_s": rate, "cpu_pct": cpu, "cpu_us_per_msg": cpu / 100 / rate * 1e6}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.experiments.relay_costs")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return 0
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            runs[variant].append(_measure(variant, args.seconds))
            print(f"round {round_ + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
    summary = {
        variant: {
            key: round(statistics.median(r[key] for r in results), 1)
            for key in ("msgs_per_s", "cpu_pct", "cpu_us_per_msg")
        }
        for variant, results in runs.items()
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
