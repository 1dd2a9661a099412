"""Garbage handshakes: --connections plain TCP connections that send --bytes random bytes
where a TLS ClientHello belongs, --parallel at a time.

Pass: the server closes every one within --close-within seconds (a TLS alert or a bare
close) and is still alive afterwards."""

import asyncio
import os
import time

import h2wire


async def one(args, gate, results):
    async with gate:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), 5)
        except (OSError, asyncio.TimeoutError) as err:
            results.append(("connect-failed:" + type(err).__name__, 0.0, 0))
            return
        got = 0
        outcome = "open"
        try:
            writer.write(os.urandom(args.bytes))
            while True:
                chunk = await asyncio.wait_for(reader.read(4096), args.close_within)
                if not chunk:
                    outcome = "closed"
                    break
                got += len(chunk)
        except asyncio.TimeoutError:
            outcome = "open"
        except OSError:
            outcome = "closed"
        writer.transport.abort()
        results.append((outcome, time.monotonic() - started, got))


async def main(args):
    gate = asyncio.Semaphore(args.parallel)
    results = []
    started = time.monotonic()
    await asyncio.gather(*(one(args, gate, results) for _ in range(args.connections)))
    elapsed = time.monotonic() - started
    closed = [r for r in results if r[0] == "closed"]
    answered = sum(1 for r in closed if r[2] > 0)
    worst = max((r[1] for r in closed), default=0.0)
    alive = h2wire.rss_mb(args.pid) > 0 if args.pid else True
    other = sorted({r[0] for r in results if r[0] != "closed"})
    h2wire.finish(len(closed) == args.connections and alive,
                  "%d/%d closed by the server (%d with a TLS alert, %d without a byte), "
                  "slowest %.0f ms, "
                  "%.1f s in all%s; server %s, RSS %.1f MB"
                  % (len(closed), args.connections, answered, len(closed) - answered,
                     worst * 1000, elapsed,
                     "; also: " + ", ".join(other) if other else "",
                     "alive" if alive else "GONE", h2wire.rss_mb(args.pid) if args.pid else 0))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 1000, "connections"),
        parallel=(int, 50, "connections at once"),
        bytes=(int, 517, "random bytes sent on each"),
        close_within=(float, 5.0, "seconds by which the server must close each"),
    )
    h2wire.run(lambda: main(ARGS))
