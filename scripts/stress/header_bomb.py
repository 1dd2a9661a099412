"""Header bombs and HPACK floods:

* h2 list: one request whose header list is a little over --max-header-bytes (by RFC
  9113's measure), and one twice that (HEADERS plus CONTINUATION frames);
* h1 list: the same over HTTP/1.1;
* HPACK bomb: --requests requests, each inserting a 4,000-byte header into the dynamic
  table and then referring to it --refs times (one byte each): about 8 KB on the wire,
  --refs x 4 KB once decoded;
* HPACK inserts: --requests requests of 60 new incrementally indexed headers each, so the
  dynamic table is rewritten all the time.

Pass: each oversized list is refused (431, RST_STREAM or a closed connection), every
insert request is answered, and the server's peak RSS stays under --bound-mb."""

import asyncio
import time

import h2wire


def hpack_int(value, prefix_bits, flags):
    """RFC 7541 §5.1 integer with `flags` in the first byte's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def indexed_literal(name, value):
    """Literal with incremental indexing, new name (RFC 7541 §6.2.1)."""
    return (b"\x40" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value)


def plain_literal(name, value):
    """Literal without indexing, new name (RFC 7541 §6.2.2)."""
    return (b"\x00" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value)


def static_get(args):
    authority = ("%s:%d" % (args.sni, args.port)).encode()
    return b"\x82\x87\x84\x01" + hpack_int(len(authority), 7, 0) + authority


def header_frames(stream, block, end_stream=True, size=16384):
    frames = []
    first = True
    while block or first:
        piece, block = block[:size], block[size:]
        kind = h2wire.HEADERS if first else h2wire.CONTINUATION
        flags = h2wire.END_STREAM if first and end_stream else 0
        if not block:
            flags |= h2wire.END_HEADERS
        frames.append(h2wire.frame(kind, flags, stream, piece))
        first = False
    return b"".join(frames)


class Tally:
    def __init__(self):
        self.refused = self.answered = self.closed = self.other = 0
        self.connections = 0
        self.how = set()

    def text(self):
        return "/".join(sorted(self.how)) or "-"


async def run_requests(args, blocks, tally):
    """Sends each block as a request, one at a time, reconnecting when the server closes."""
    peer = None
    stream = 1
    for block in blocks:
        if peer is None or peer.closed:
            if peer is not None:
                peer.abort()
            peer = await h2wire.h2_open(args, answer_pings=False)
            tally.connections += 1
            stream = 1
        statuses, rst = len(peer.statuses), peer.rst
        peer.send(header_frames(stream, block))
        stream += 2
        deadline = time.monotonic() + 3
        while (len(peer.statuses) == statuses and peer.rst == rst and not peer.closed
               and time.monotonic() < deadline):
            await asyncio.sleep(0.002)
        new = peer.statuses[statuses:]
        if 431 in new or peer.rst > rst:
            tally.refused += 1
            tally.how.add("431" if 431 in new else "RST_STREAM")
        elif peer.closed:
            tally.closed += 1
            tally.how.add("closed, " + peer.goaway_name())
        elif new and 200 <= new[0] < 300:
            tally.answered += 1
        else:
            tally.other += 1
    if peer is not None:
        peer.abort()


async def h1_list(args):
    reader, writer = await h2wire.open_tls(args, alpn=("http/1.1",))
    head = ("GET / HTTP/1.1\r\nHost: %s:%d\r\n" % (args.sni, args.port)).encode()
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 100)
                   for i in range(args.max_header_bytes * 2 // 110))
    try:
        writer.write(head + pad + b"\r\n")
        line = await asyncio.wait_for(reader.readline(), 5)
    except (OSError, asyncio.TimeoutError):
        line = b""
    writer.transport.abort()
    return line.decode(errors="replace").strip() or "closed"


async def main(args):
    sampler = h2wire.RssSampler(args.pid, 0.05).start()
    big = static_get(args) + b"".join(
        plain_literal(b"x-big-%d" % i, b"b" * 100) for i in range(args.max_header_bytes * 2 // 110))
    # A list a little over the limit (name + value + 32 bytes a field), then a plain GET on
    # the same connection: RFC 9113 §10.5.1 allows 431 on the stream alone.
    fields = args.max_header_bytes // 140 + 2
    over = static_get(args) + b"".join(
        plain_literal(b"x-over%02d" % (i % 100), b"o" * 100) for i in range(fields))
    h2_over = Tally()
    await run_requests(args, [over, static_get(args)], h2_over)
    h2_big = Tally()
    await run_requests(args, [big], h2_big)
    h1_line = await h1_list(args)

    bomb_block = static_get(args) + indexed_literal(b"x-bomb", b"B" * 4000) + b"\xbe" * args.refs
    bomb = Tally()
    await run_requests(args, [bomb_block] * args.requests, bomb)

    inserts = Tally()
    blocks = [static_get(args) + b"".join(indexed_literal(b"x-i-%d-%d" % (n, j), b"v" * 40)
                                          for j in range(60))
              for n in range(args.requests)]
    await run_requests(args, blocks, inserts)
    sampler.stop()

    over_ok = h2_over.refused + h2_over.closed >= 1
    big_ok = h2_big.refused + h2_big.closed == 1
    h1_ok = h1_line.startswith("HTTP/1.1 431") or h1_line == "closed"
    bomb_ok = bomb.refused + bomb.closed == args.requests
    inserts_ok = inserts.answered == args.requests
    ok = over_ok and big_ok and h1_ok and bomb_ok and inserts_ok and sampler.peak < args.bound_mb
    h2wire.finish(ok, "h2 list %d bytes over: %s, then %s on %d conn; "
                  "h2 list of %d KB: %s; h1 list: %s; HPACK bomb (%.1f MB decoded each): "
                  "%d/%d stopped (%s) on %d conn; inserts: %d/%d answered on %d conn; "
                  "peak RSS %.1f MB (at start %.1f, bound %d)"
                  % (fields * 140 - args.max_header_bytes, h2_over.text(),
                     "the next GET answered" if h2_over.answered else "no answer to the next GET",
                     h2_over.connections,
                     len(big) // 1024, h2_big.text() if big_ok else "answered", h1_line,
                     args.refs * 4000 / 1e6, bomb.refused + bomb.closed, args.requests,
                     bomb.text(), bomb.connections, inserts.answered, args.requests,
                     inserts.connections, sampler.peak, sampler.first, args.bound_mb))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        max_header_bytes=(int, 16384, "the server's max_header_bytes"),
        requests=(int, 100, "bomb and insert requests"),
        refs=(int, 4000, "references to the 4,000-byte entry per bomb request"),
        bound_mb=(int, 100, "peak RSS bound"),
    )
    h2wire.run(lambda: main(ARGS))
