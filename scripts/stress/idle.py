"""Idle HTTP/2 connections: open --connections TLS+h2 connections that send the preface
and SETTINGS and then no request, run --probe (a curl command that prints
'STATUS SECONDS') while they are open, then wait for the server to close them.

Half of the connections act like an idle browser tab (their HTTP/2 stack acknowledges
SETTINGS and answers PINGs); the other half are silent (they never answer a PING, so a
graceful GOAWAY, which waits for a PING round trip, cannot complete).

Pass: every probe answers 200 within --probe-max seconds and, when --close-within is set,
every connection gets GOAWAY within --close-within seconds of its SETTINGS, the answering
ones are closed by then, and the silent ones by --silent-close-within
(--close-within 0: only the probe is checked; the connections are dropped)."""

import asyncio
import shlex
import time

import h2wire


async def one(args, index, peers, failures, gate):
    async with gate:
        try:
            peer = await h2wire.h2_open(args, answer_pings=index % 2 == 0,
                                        timeout=args.open_timeout)
            peer.opened_at = time.monotonic()
            peers.append(peer)
        except Exception as err:  # counted: at an fd limit some opens may fail
            failures.append(type(err).__name__)


async def probe(args):
    """Runs the probe command; returns (status, seconds) or (None, message)."""
    proc = await asyncio.create_subprocess_exec(
        *shlex.split(args.probe), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), args.probe_max + 10)
    except asyncio.TimeoutError:
        proc.kill()
        return None, "probe timed out"
    words = out.decode().split()
    if proc.returncode != 0 or len(words) != 2:
        return None, "probe failed (%s)" % err.decode().strip().splitlines()[-1:]
    return int(words[0]), float(words[1])


def span(values):
    values = sorted(values)
    return "%.1f-%.1f s" % (values[0], values[-1]) if values else "-"


def closing(kind, peers, bound):
    """(all closed in time, figure) for one kind of peer."""
    delays = [p.closed_at - p.opened_at for p in peers if p.closed]
    in_time = sum(1 for d in delays if d <= bound)
    return in_time == len(peers), "%s %d/%d closed within %.0f s (%s)" % (
        kind, in_time, len(peers), bound, span(delays))


async def main(args):
    peers, failures = [], []
    gate = asyncio.Semaphore(args.parallel)
    started = time.monotonic()
    await asyncio.gather(*(one(args, i, peers, failures, gate)
                           for i in range(args.connections)))
    open_secs = time.monotonic() - started
    await asyncio.sleep(0.3)
    still_open = sum(1 for p in peers if not p.closed)
    rss = h2wire.rss_mb(args.pid) if args.pid else 0.0
    probes = [await probe(args) for _ in range(args.probes)]
    good = [secs for status, secs in probes if status == 200]
    worst = max(good) if good else float("nan")
    probe_ok = len(good) == len(probes) and worst <= args.probe_max
    probe_text = ("probe 200 in max %.0f ms (bound %.0f ms)" % (worst * 1000, args.probe_max * 1000)
                  if len(good) == len(probes) else
                  "probe: %s" % [p for p in probes if p[0] != 200][:1])
    figure = ("%d/%d opened in %.1f s, %d open at the probe, server RSS %.1f MB; %s"
              % (len(peers), args.connections, open_secs, still_open, rss, probe_text))
    if failures:
        figure += "; open failures: %d (%s)" % (len(failures), failures[0])
    if args.close_within <= 0:
        closed_early = len(peers) - still_open
        for peer in peers:
            peer.abort()
        h2wire.finish(probe_ok and len(peers) > 0,
                      figure + "; %d closed by the server" % closed_early)
    deadline = max(p.opened_at for p in peers) + max(args.close_within,
                                                     args.silent_close_within) + 1
    while time.monotonic() < deadline and not all(p.closed for p in peers):
        await asyncio.sleep(0.1)
    goaways = [p.goaway_at - p.opened_at for p in peers if p.goaway_at is not None]
    goaway_ok = sum(1 for g in goaways if g <= args.close_within) == len(peers)
    answering_ok, answering = closing("answering", [p for p in peers if p.answer_pings],
                                      args.close_within)
    silent_ok, silent = closing("silent", [p for p in peers if not p.answer_pings],
                                args.silent_close_within)
    for peer in peers:
        peer.abort()
    ok = (probe_ok and len(peers) == args.connections and goaway_ok
          and answering_ok and silent_ok)
    h2wire.finish(ok, "%s; GOAWAY on %d/%d (%s); %s; %s" % (
        figure, len(goaways), len(peers), span(goaways), answering, silent))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 200, "idle connections to open"),
        parallel=(int, 50, "handshakes in flight at once"),
        open_timeout=(float, 10.0, "seconds for one connection's handshake"),
        probe=(str, "", "the probe command; prints 'STATUS SECONDS'"),
        probes=(int, 3, "how many times to run the probe"),
        probe_max=(float, 0.5, "seconds the probe may take"),
        close_within=(float, 0.0, "seconds by which every connection must get GOAWAY and "
                      "the answering ones be closed"),
        silent_close_within=(float, 0.0, "seconds by which the silent ones must be closed"),
    )
    h2wire.run(lambda: main(ARGS))
