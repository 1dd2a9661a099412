"""CONTINUATION flood: a HEADERS frame without END_HEADERS followed by CONTINUATION frames
that never end the header block, --frame-bytes each, as fast as the socket takes them, up
to --max-mb or --seconds.

Pass: the server closes the connection (or refuses the stream) before the client stops,
and its peak RSS stays under --bound-mb."""

import asyncio
import time

import hpack

import h2wire


async def main(args):
    sampler = h2wire.RssSampler(args.pid, 0.05).start()
    peer = await h2wire.h2_open(args, answer_pings=False)
    started = time.monotonic()
    block = hpack.Encoder().encode(h2wire.request_headers(args))
    peer.send(h2wire.frame(h2wire.HEADERS, 0, 1, block))
    unit = h2wire.literal(b"x-flood", b"f" * 120)
    payload = (unit * (args.frame_bytes // len(unit) + 1))[:args.frame_bytes]
    chunk = h2wire.frame(h2wire.CONTINUATION, 0, 1, payload) * 16
    sent = 0
    limit = args.max_mb * 1024 * 1024
    while (sent < limit and not peer.closed and peer.rst == 0
           and time.monotonic() - started < args.seconds):
        if not peer.send(chunk):
            break
        sent += len(chunk)
        try:
            await asyncio.wait_for(peer.writer.drain(), 5)
        except (OSError, asyncio.TimeoutError, RuntimeError):
            break
    elapsed = time.monotonic() - started
    await peer.wait_closed(1.0)
    sampler.stop()
    stopped = peer.closed or peer.rst > 0 or 431 in peer.statuses
    h2wire.finish(stopped and sampler.peak < args.bound_mb,
                  "%s after %.1f MB of CONTINUATION in %.1f s (%s, %d RST_STREAM, statuses %s); "
                  "peak RSS %.1f MB (at start %.1f, bound %d)"
                  % ("closed" if peer.closed else "still open", sent / 1048576, elapsed,
                     peer.goaway_name(), peer.rst, peer.statuses or "none",
                     sampler.peak, sampler.first, args.bound_mb))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        frame_bytes=(int, 16384, "CONTINUATION payload size"),
        max_mb=(int, 256, "stop sending after this many MB"),
        seconds=(float, 5.0, "stop sending after this many seconds"),
        bound_mb=(int, 100, "peak RSS bound"),
    )
    h2wire.run(lambda: main(ARGS))
