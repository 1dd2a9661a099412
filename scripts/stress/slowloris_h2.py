"""Slowloris over HTTP/2, two ways at once:

* headers: a HEADERS frame without END_HEADERS, then one-byte CONTINUATION frames, one
  every --interval seconds, --frames of them (few enough that h2's CONTINUATION-count
  defence does not fire), then nothing: the request head never completes;
* body: a complete POST head without END_STREAM, then a one-byte DATA frame every
  --interval seconds, so the request never ends.

Pass: the server closes every connection within --close-within seconds of its SETTINGS
(the idle timeout plus the request timeout, plus slack)."""

import asyncio
import time

import hpack

import h2wire


async def drip(args, mode, results):
    peer = await h2wire.h2_open(args, answer_pings=mode != "headers")
    opened = time.monotonic()
    if mode == "headers":
        block = hpack.Encoder().encode(h2wire.request_headers(args))
        peer.send(h2wire.frame(h2wire.HEADERS, 0, 1, block))
        trickle = h2wire.literal(b"x-slow", b"a" * 100) * 1000

        def next_frame(i):
            return h2wire.frame(h2wire.CONTINUATION, 0, 1, trickle[i:i + 1])
    else:
        block = hpack.Encoder().encode(h2wire.request_headers(args, method="POST"))
        peer.send(h2wire.frame(h2wire.HEADERS, h2wire.END_HEADERS, 1, block))

        def next_frame(_i):
            return h2wire.frame(h2wire.DATA, 0, 1, b"x")
    sent = 0
    while not peer.closed and time.monotonic() - opened < args.close_within + 2:
        if mode == "body" or sent < args.frames:
            if not peer.send(next_frame(sent)):
                break
            sent += 1
        await peer.wait_closed(args.interval)
    await peer.wait_closed(0.5)
    results.append((mode, peer.closed, (peer.closed_at or time.monotonic()) - opened, sent,
                    peer.goaway_name(), peer.rst, peer.statuses,
                    peer.goaway_at - opened if peer.goaway_at is not None else None))
    peer.abort()


def summary(mode, results, bound):
    rows = [r for r in results if r[0] == mode]
    in_time = [r for r in rows if r[1] and r[2] <= bound]
    times = sorted(r[2] for r in rows if r[1])
    goaways = sorted({r[4] for r in rows})
    goaway_times = sorted(r[7] for r in rows if r[7] is not None)
    statuses = sorted({s for r in rows for s in r[6]})
    return len(in_time) == len(rows), (
        "%s: %d/%d closed within %.0f s (%s; %d-%d frames dripped; %s at %s; statuses %s)"
        % (mode, len(in_time), len(rows), bound, span(times),
           min(r[3] for r in rows), max(r[3] for r in rows), "/".join(goaways),
           span(goaway_times), statuses or "none"))


def span(values):
    return "%.1f-%.1f s" % (values[0], values[-1]) if values else "-"


async def main(args):
    results = []
    await asyncio.gather(*(drip(args, mode, results)
                           for mode in ("headers", "body") for _ in range(args.connections)))
    ok_h, text_h = summary("headers", results, args.close_within)
    ok_b, text_b = summary("body", results, args.close_within)
    h2wire.finish(ok_h and ok_b, text_h + "; " + text_b)


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 5, "connections per way"),
        interval=(float, 1.0, "seconds between frames"),
        frames=(int, 4, "CONTINUATION frames dripped before the header block stalls"),
        close_within=(float, 7.0, "seconds by which the server must close each connection"),
    )
    h2wire.run(lambda: main(ARGS))
