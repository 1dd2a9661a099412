"""Large-file flow-control attack: connections that advertise
SETTINGS_INITIAL_WINDOW_SIZE = 0 ask for a large file on many streams and never open a
window, so not one byte of body may be sent. A server that reads the files into its send
buffers anyway grows by (connections x streams x file size); one that streams with flow
control holds only its read buffers. Pass: the peak RSS stays under --bound-mb and, once
the clients have gone, the RSS is back under --after-mb."""

import asyncio
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

import h2wire


async def attacker(args, opened, state):
    reader, writer = await h2wire.open_tls(args, timeout=10)
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
                                     h2.settings.SettingCodes.ENABLE_PUSH: 0})
    conn.initiate_connection()
    for _ in range(args.streams):
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, h2wire.request_headers(args, path=args.path), end_stream=True)
    writer.write(conn.data_to_send())
    await writer.drain()
    opened.append(conn)
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                state["closed"] += 1
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers).get(":status")
                    state["statuses"][status] = state["statuses"].get(status, 0) + 1
                elif isinstance(event, h2.events.DataReceived):
                    state["body_bytes"] += len(event.data)
                    # Count it, but never give the window back.
                elif isinstance(event, h2.events.StreamReset):
                    state["resets"] += 1
            out = conn.data_to_send()
            if out:
                writer.write(out)
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except OSError:
        state["closed"] += 1


async def main(args):
    base = h2wire.rss_mb(args.pid)
    sampler = h2wire.RssSampler(args.pid, 0.1).start()
    state = {"statuses": {}, "body_bytes": 0, "resets": 0, "closed": 0}
    opened = []
    tasks = [asyncio.ensure_future(attacker(args, opened, state))
             for _ in range(args.connections)]
    # Hold; stop early if the server balloons past --abort-mb (it has failed already, and
    # a server that buffers every file would otherwise take the machine's memory).
    held = time.monotonic()
    while time.monotonic() - held < args.hold:
        await asyncio.sleep(0.1)
        if sampler.samples and sampler.samples[-1] > args.abort_mb:
            break
    held = time.monotonic() - held
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    peak = sampler.peak
    sampler.stop()
    await asyncio.sleep(args.settle)
    after = h2wire.rss_mb(args.pid)
    requested = args.connections * args.streams * args.file_mb
    answered = sum(state["statuses"].values())
    ok = (peak < args.bound_mb and after < args.after_mb and after > 0
          and len(opened) == args.connections)
    statuses = ", ".join("%s x%d" % item for item in sorted(state["statuses"].items()))
    h2wire.finish(ok, "peak RSS %.1f MB (bound %d), after %.1f MB (bound %d), before %.1f MB; "
                  "%d conn x %d streams x %g MB = %g MB requested, %d answered (%s), "
                  "%d body bytes, held %.1f s"
                  % (peak, args.bound_mb, after, args.after_mb, base,
                     len(opened), args.streams, args.file_mb, requested, answered,
                     statuses or "none", state["body_bytes"], held))


if __name__ == "__main__":
    ARGS = h2wire.arguments(
        __doc__,
        connections=(int, 1, "connections"),
        streams=(int, 32, "GETs per connection"),
        path=(str, "/big.bin", "the large file"),
        file_mb=(float, 2.0, "its size, for the figure"),
        hold=(float, 3.0, "seconds to hold the streams open"),
        settle=(float, 2.0, "seconds after the clients leave before measuring again"),
        bound_mb=(int, 100, "peak RSS bound"),
        after_mb=(int, 60, "RSS bound once the clients have gone"),
        abort_mb=(int, 2000, "stop holding once the server's RSS passes this"),
    )
    h2wire.run(lambda: main(ARGS))
