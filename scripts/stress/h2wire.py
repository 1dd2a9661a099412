"""Shared pieces of the hostile clients in scripts/stress: TLS connections, raw HTTP/2
frames, a frame reader that notices GOAWAY and the server closing, server RSS from /proc,
a hard time limit, and the one result line each client prints.

Every client prints exactly one line on standard output, `ok FIGURE` or `FAIL FIGURE`,
and exits 0 or 1; scripts/stress.sh puts the check's name in front of it.
"""

import argparse
import asyncio
import os
import resource
import signal
import ssl
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
CANCEL = 0x8
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR",
               3: "FLOW_CONTROL_ERROR", 4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED",
               6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL",
               9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


def arguments(description, **extra):
    """The common options (--port, --sni, --cacert, --pid, --limit) plus `extra`:
    name -> (type, default, help)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sni", default="fixed.localhost")
    parser.add_argument("--cacert", default=None)
    parser.add_argument("--pid", type=int, default=0, help="server pid, for its RSS")
    parser.add_argument("--limit", type=float, default=60.0, help="hard time limit, seconds")
    for name, (kind, default, text) in extra.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=text)
    args = parser.parse_args()
    hard_limit(args.limit)
    raise_nofile()
    return args


def hard_limit(seconds):
    """Whatever happens, the client stops after `seconds` with a FAIL line."""
    def expire(_signum, _frame):
        sys.stdout.write("FAIL client hit its hard time limit (%.0f s)\n" % seconds)
        sys.stdout.flush()
        os._exit(1)
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def finish(ok, figure):
    sys.stdout.write("%s %s\n" % ("ok" if ok else "FAIL", figure))
    sys.stdout.flush()
    os._exit(0 if ok else 1)


def rss_mb(pid):
    """The server's resident set in MB (VmRSS), or -1 when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return -1.0


class RssSampler:
    """Samples the server's RSS every `interval` seconds in the background."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.samples = []
        self.task = None

    def start(self):
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self):
        while True:
            if self.pid:
                self.samples.append(rss_mb(self.pid))
            await asyncio.sleep(self.interval)

    @property
    def first(self):
        return self.samples[0] if self.samples else -1.0

    @property
    def peak(self):
        return max(self.samples, default=rss_mb(self.pid) if self.pid else 0.0)

    def stop(self):
        if self.task:
            self.task.cancel()


_CONTEXTS = {}


def tls_context(alpn=("h2",), cafile=None):
    """One context per (ALPN, CA): building one loads the trust store, which is slow."""
    key = (tuple(alpn), cafile)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = _new_context(alpn, cafile)
    return _CONTEXTS[key]


def _new_context(alpn, cafile):
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    return ctx


async def open_tls(args, alpn=("h2",), timeout=10.0, sni=None):
    ctx = tls_context(alpn, args.cacert)
    return await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port, ssl=ctx,
                                server_hostname=sni or args.sni,
                                limit=1 << 20),
        timeout)


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def settings(values=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in values))


def rst_stream(stream, code=CANCEL):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def request_headers(args, method="GET", path="/", extra=()):
    return [(":method", method), (":scheme", "https"),
            (":authority", "%s:%d" % (args.sni, args.port)), (":path", path)] + list(extra)


def literal(name, value):
    """One header as a literal without indexing, new name (RFC 7541 §6.2.2); lengths < 127."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


class Peer:
    """Reads the server's side of one connection in the background: frames, the
    GOAWAY error code, response statuses, and when the server closed it."""

    def __init__(self, reader, writer, answer_pings=True):
        self.reader, self.writer = reader, writer
        self.answer_pings = answer_pings
        self.buffer = b""
        self.frames = 0
        self.goaway = None
        self.goaway_at = None
        self.goaway_last = None
        self.rst = 0
        self.statuses = []
        self.closed_at = None
        self.bytes_in = 0
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.block = b""
        self.settings_seen = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    @property
    def closed(self):
        return self.closed_at is not None

    async def _run(self):
        try:
            while True:
                chunk = await self.reader.read(1 << 16)
                if not chunk:
                    break
                self.bytes_in += len(chunk)
                self._parse(chunk)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        self.closed_at = time.monotonic()

    def _parse(self, chunk):
        self.buffer += chunk
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            kind, flags = self.buffer[3], self.buffer[4]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            payload = self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            self.frames += 1
            self._frame(kind, flags, stream, payload)

    def _frame(self, kind, flags, stream, payload):
        if kind == GOAWAY and len(payload) >= 8:
            self.goaway = int.from_bytes(payload[4:8], "big")
            self.goaway_last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if self.goaway_at is None:
                self.goaway_at = time.monotonic()
        elif kind == RST_STREAM:
            self.rst += 1
        elif kind == PING and not flags & ACK and self.answer_pings:
            self.send(frame(PING, ACK, 0, payload))
        elif kind == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
            self.settings_seen.set()
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                pad = payload[0] if flags & 0x8 else 0
                start = (1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0)
                payload = payload[start:len(payload) - pad]
            self.block += payload
            if flags & END_HEADERS:
                try:
                    for name, value in self.decoder.decode(self.block, raw=True):
                        if name == b":status":
                            self.statuses.append(int(value))
                except Exception:  # a decoding problem is not what is measured
                    pass
                self.block = b""

    def send(self, data):
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            return True
        except (OSError, RuntimeError):
            return False

    async def wait_closed(self, timeout):
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except asyncio.TimeoutError:
            pass
        return self.closed

    def goaway_name(self):
        if self.goaway is None:
            return "no GOAWAY"
        return "GOAWAY " + ERROR_NAMES.get(self.goaway, str(self.goaway))

    def abort(self):
        self.task.cancel()
        try:
            self.writer.transport.abort()
        except Exception:
            pass


async def h2_open(args, client_settings=(), answer_pings=True, timeout=10.0):
    """A TLS connection with ALPN h2, the preface and SETTINGS sent, the server's SETTINGS
    received and acknowledged (so no ACK lands inside a header block sent later), and a
    Peer reading. Pass answer_pings=False when a header block will be left open: a PING
    answer between HEADERS and CONTINUATION is a protocol error."""
    started = time.monotonic()
    reader, writer = await open_tls(args, timeout=timeout)
    if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
        writer.close()
        raise RuntimeError("the server did not select h2")
    writer.write(PREFACE + settings(client_settings))
    peer = Peer(reader, writer, answer_pings)
    left = max(timeout - (time.monotonic() - started), 0.1)
    try:
        await asyncio.wait_for(peer.settings_seen.wait(), left)
    except asyncio.TimeoutError:
        peer.abort()
        raise
    return peer


def run(main):
    try:
        asyncio.run(main())
    except SystemExit:
        raise
    except BaseException as err:  # a crash is a FAIL line, never a silent pass
        finish(False, "client error: %s: %s" % (type(err).__name__, err))
