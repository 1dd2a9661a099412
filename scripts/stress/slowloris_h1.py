"""Slowloris over HTTP/1.1: --connections TLS connections (ALPN http/1.1) that send a
request head one byte every --interval seconds and never finish it.

Pass: the server closes every one within --close-within seconds of its handshake (the
header read timeout plus slack)."""

import asyncio
import time

import h2wire

HEAD = (b"GET / HTTP/1.1\r\nHost: fixed.localhost\r\nUser-Agent: slowloris\r\nX-Padding: "
        + b"a" * 4096)


async def drip(args, results):
    reader, writer = await h2wire.open_tls(args, alpn=("http/1.1",))
    opened = time.monotonic()
    head = HEAD.replace(b"fixed.localhost", args.sni.encode())
    got = b""

    async def read():
        nonlocal got
        try:
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                got += chunk
        except OSError:
            return

    reading = asyncio.ensure_future(read())
    sent = 0
    while not reading.done() and sent < len(head):
        if time.monotonic() - opened > args.close_within + 2:
            break
        try:
            writer.write(head[sent:sent + 1])
            sent += 1
        except (OSError, RuntimeError):
            break
        try:
            await asyncio.wait_for(asyncio.shield(reading), args.interval)
        except asyncio.TimeoutError:
            pass
    closed = reading.done()
    reading.cancel()
    writer.transport.abort()
    results.append((closed, time.monotonic() - opened, sent, got.split(b"\r\n", 1)[0]))


async def main(args):
    results = []
    await asyncio.gather(*(drip(args, results) for _ in range(args.connections)))
    closed = [r for r in results if r[0] and r[1] <= args.close_within]
    times = sorted(r[1] for r in results if r[0])
    answers = sorted({r[3].decode(errors="replace") for r in results if r[3]})
    ok = len(closed) == args.connections
    h2wire.finish(ok, "%d/%d closed by the server within %.0f s (%s-%s s after the handshake), "
                  "%d-%d bytes of the head sent, response: %s"
                  % (len(closed), args.connections, args.close_within,
                     "%.1f" % times[0] if times else "-", "%.1f" % times[-1] if times else "-",
                     min(r[2] for r in results), max(r[2] for r in results),
                     ", ".join(answers) or "none"))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 10, "connections"),
        interval=(float, 1.0, "seconds between bytes"),
        close_within=(float, 5.0, "seconds by which the server must close each connection"),
    )
    h2wire.run(lambda: main(ARGS))
