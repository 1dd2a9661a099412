#!/usr/bin/env bash
# Hostile clients against `misdirect serve`, on loopback only: flow-control stalls, idle
# and slow connections (slowloris over HTTP/1.1 and HTTP/2), rapid reset, CONTINUATION
# floods, header and HPACK bombs, garbage handshakes, file-descriptor exhaustion and
# sustained load. Each check prints one line, `ok|FAIL  <check>  <figure>`; all checks run,
# then the script exits non-zero if any failed. docs/reliability.md lists the attacks, the
# limits that stop them and the figures.
#
#   scripts/stress.sh --short   # every check a few seconds, under two minutes in all (CI)
#   scripts/stress.sh           # the long forms: 2,000 idle connections, 60 s of load, ...
#
# Installs curl, openssl, nghttp2-client (h2load) and python3-h2 with apt-get when missing
# (or the h2 package with pip). Builds the release binary, or runs $MISDIRECT_BIN when set.
# Every client has a hard time limit; the servers are always stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONDONTWRITEBYTECODE=1

short=0
case "${1:-}" in
--short) short=1 ;;
"") ;;
*)
    echo "usage: scripts/stress.sh [--short]" >&2
    exit 2
    ;;
esac

die() {
    printf '\n*** stress FAILED: %s ***\n' "$*" >&2
    exit 1
}

# --- tools ---------------------------------------------------------------------------
py=""
pick_python() {
    local cand
    for cand in python3 /usr/bin/python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import h2, hpack' 2>/dev/null; then
            py=$(command -v "$cand")
            return 0
        fi
    done
    return 1
}
need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
pick_python || need_apt+=(python3-h2)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "stress: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! pick_python; then
    python3 -m pip install --quiet h2 || die "cannot install the python h2 package"
    pick_python || die "no python3 with the h2 package"
fi
for tool in curl openssl h2load timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

if [ -n "${MISDIRECT_BIN:-}" ]; then
    bin=$MISDIRECT_BIN # a binary built elsewhere
else
    cargo build --release -p misdirect-server
    bin=target/release/misdirect
fi

# --- figures: short (CI) and long forms ----------------------------------------------
if [ "$short" = 1 ]; then
    mode=short
    handshake=2 header_read=3 idle=2 request=3 keepalive=10 keepalive_timeout=5 send=10
    max_header_bytes=16384
    rss_bound=100 fc_bound=40 fc_after=30
    fc_conns=1 fc_streams=32 fc_file_mb=2 fc_hold=3
    idle_conns=200 idle_probe_max=0.5
    loris_conns=10 loris_h2_conns=5
    reset_conns=1 reset_streams=10000
    cont_mb=256 cont_secs=5
    bomb_requests=100
    garbage_conns=1000
    fd_ulimit=256 fd_conns=270
    load_secs=5
else
    mode=long
    handshake=5 header_read=10 idle=10 request=10 keepalive=30 keepalive_timeout=20 send=60
    max_header_bytes=65536
    rss_bound=200 fc_bound=200 fc_after=60
    fc_conns=8 fc_streams=128 fc_file_mb=10 fc_hold=10
    idle_conns=2000 idle_probe_max=0.1
    loris_conns=100 loris_h2_conns=50
    reset_conns=10 reset_streams=10000
    cont_mb=1024 cont_secs=30
    bomb_requests=1000
    garbage_conns=10000
    fd_ulimit=1024 fd_conns=1030
    load_secs=60
fi

# --- certificates, files, configurations ---------------------------------------------
work=$(mktemp -d)
server_pid=""
fd_pid=""
sampler_pid=""
stop_pid() { # pid
    [ -n "$1" ] || return 0
    if kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_pid "$sampler_pid"
    stop_pid "$fd_pid"
    stop_pid "$server_pid"
    rm -rf "$work"
}
trap cleanup EXIT

(
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=misdirect-stress-ca -keyout ca.key -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=fixed.localhost -keyout server.key -out server.csr
    printf '%s\n' 'subjectAltName=DNS:fixed.localhost,DNS:files.localhost' \
        'extendedKeyUsage=serverAuth' 'basicConstraints=CA:FALSE' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
    cat server.crt ca.pem >server.pem
    mkdir files
    head -c "$((fc_file_mb * 1024 * 1024))" /dev/urandom >files/big.bin
    echo "index" >files/index.html
) >"$work/openssl.log" 2>&1 || die "openssl: $(tail -n 3 "$work/openssl.log")"
ca="$work/ca.pem"

write_config() { # file, [limits] lines
    cat >"$1" <<EOF
[[listener]]
addr = "127.0.0.1:0"

[limits]
$2

[[vhost]]
name = "fixed.localhost"
cert = "server.pem"
key = "server.key"
respond = { body = "fixed body for the stress campaign\n" }

[[vhost]]
name = "files.localhost"
cert = "server.pem"
key = "server.key"
respond = { dir = "files" }
EOF
}
write_config "$work/stress.toml" "tls_handshake_timeout_secs = $handshake
header_read_timeout_secs = $header_read
max_header_bytes = $max_header_bytes
max_concurrent_streams = 128
shutdown_timeout_secs = 2
idle_timeout_secs = $idle
request_timeout_secs = $request
keepalive_interval_secs = $keepalive
keepalive_timeout_secs = $keepalive_timeout
send_timeout_secs = $send
max_connections = 10000"
# The descriptor check's instance: long idle and keep-alive timeouts, so only running out
# of descriptors (not the idle timeout) can free a slot for the new client.
write_config "$work/fd.toml" "idle_timeout_secs = 600
keepalive_interval_secs = 600
request_timeout_secs = 600
max_connections = 10000"

start() { # config, log, [ulimit -n]; sets started_pid and started_port
    started_pid="" started_port=""
    if [ -n "${3:-}" ]; then
        (
            ulimit -n "$3"
            RUST_LOG=info exec "$bin" serve --config "$1" --log-format json
        ) >/dev/null 2>"$2" &
    else
        RUST_LOG=info "$bin" serve --config "$1" --log-format json >/dev/null 2>"$2" &
    fi
    started_pid=$!
    for _ in $(seq 100); do
        started_port=$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$2" 2>/dev/null | head -n 1 |
            sed 's/.*://; s/"//') || true
        [ -n "$started_port" ] && return 0
        kill -0 "$started_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$started_pid"
    die "the server did not start ($1): $(tail -n 3 "$2")"
}

start "$work/stress.toml" "$work/server.log"
server_pid=$started_pid port=$started_port

probe_cmd() { # port
    printf '%s' "curl -sS -o /dev/null --max-time 10 --http2" \
        " -w '%{http_code} %{time_total}'" \
        " --cacert $ca --resolve fixed.localhost:$1:127.0.0.1 https://fixed.localhost:$1/"
}

# --- reporting -----------------------------------------------------------------------
failures=0
report() { # ok|FAIL, check, figure
    printf '%-4s  %-26s  %s\n' "$1" "$2" "$3"
    [ "$1" = ok ] || failures=$((failures + 1))
}
server_alive() { # check name; restarts a server that died so the next checks still run
    if ! kill -0 "$server_pid" 2>/dev/null; then
        report FAIL "$1" "the server exited: $(tail -n 2 "$work/server.log" | tr '\n' ' ')"
        start "$work/stress.toml" "$work/server.log"
        server_pid=$started_pid port=$started_port
    fi
}
client() { # check name, time limit (s), script, arguments...
    local name=$1 limit=$2 script=$3 out line
    shift 3
    out=$(timeout -k 5 "$((${limit%.*} + 15))" "$py" "scripts/stress/$script" \
        --port "$port" --cacert "$ca" --pid "$server_pid" --limit "$limit" "$@" \
        2>"$work/$script.err") || true
    line=$(printf '%s\n' "$out" | tail -n 1)
    case "$line" in
    "ok "*) report ok "$name" "${line#ok }" ;;
    "FAIL "*) report FAIL "$name" "${line#FAIL }" ;;
    *) report FAIL "$name" "no result from $script: $(tail -n 1 "$work/$script.err")" ;;
    esac
    server_alive "$name"
}
rss() { # pid
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -1
}

echo "stress ($mode): misdirect pid $server_pid on 127.0.0.1:$port, RSS $(rss "$server_pid") MB," \
    "idle_timeout $idle s, request_timeout $request s, header_read_timeout $header_read s"

# 1. Large files to clients that never open a flow-control window.
client flow-control 60 flow_control.py --sni files.localhost \
    --connections "$fc_conns" --streams "$fc_streams" --file-mb "$fc_file_mb" \
    --hold "$fc_hold" --bound-mb "$fc_bound" --after-mb "$fc_after"

# 2. Idle HTTP/2 connections: a new client is still served, the idle ones are closed.
client idle-h2 $((60 + 2 * idle)) idle.py --connections "$idle_conns" \
    --probe "$(probe_cmd "$port")" --probe-max "$idle_probe_max" \
    --close-within $((idle + 2)) --silent-close-within $((idle + request + 2))

# 3. Slowloris over HTTP/1.1: one byte of the request head a second.
client slowloris-h1 $((header_read + 20)) slowloris_h1.py --connections "$loris_conns" \
    --close-within $((header_read + 2))

# 4. Slowloris over HTTP/2: CONTINUATION a byte at a time, and a body a byte a second.
client slowloris-h2 $((idle + request + 20)) slowloris_h2.py --connections "$loris_h2_conns" \
    --close-within $((idle + request + 2))

# 5. Rapid reset.
client rapid-reset 120 rapid_reset.py --connections "$reset_conns" --streams "$reset_streams" \
    --probe "$(probe_cmd "$port")" --probe-max 1 --bound-mb "$rss_bound"

# 6. CONTINUATION flood.
client continuation-flood $((cont_secs + 20)) continuation_flood.py --max-mb "$cont_mb" \
    --seconds "$cont_secs" --bound-mb "$rss_bound"

# 7. Header lists over max_header_bytes, HPACK bombs and dynamic-table churn.
client header-bomb 120 header_bomb.py --max-header-bytes "$max_header_bytes" \
    --requests "$bomb_requests" --bound-mb "$rss_bound"

# 8. Random bytes instead of a ClientHello, then plain HTTP to the TLS port.
client garbage-handshake 120 garbage.py --connections "$garbage_conns" \
    --close-within $((handshake + 2))
plain=$(curl -sS -o "$work/plain.body" --max-time 5 -w '%{http_code}' \
    "http://127.0.0.1:$port/" 2>"$work/plain.err") || true
after=$(eval "$(probe_cmd "$port")" 2>/dev/null) || after="000 -"
body=$(head -c 70 "$work/plain.body" 2>/dev/null | tr -d '\r\n')
if [ "$plain" = 400 ] && [ "${after%% *}" = 200 ]; then
    report ok plain-http-to-tls "400 \"$body\"; a TLS client after it: 200"
else
    report FAIL plain-http-to-tls "status ${plain:-none} ($(tail -n 1 "$work/plain.err"))," \
        "want 400; a TLS client after it: ${after%% *}"
fi
server_alive plain-http-to-tls

# 9. Out of file descriptors: a second instance under `ulimit -n`, more idle connections
# than descriptors, then a new client.
start "$work/fd.toml" "$work/fd.log" "$fd_ulimit"
fd_pid=$started_pid fd_port=$started_port
fd_limit=$(awk '/^Max open files/ { print $4 }' "/proc/$fd_pid/limits" 2>/dev/null || echo "?")
out=$(timeout -k 5 75 "$py" scripts/stress/idle.py --port "$fd_port" --cacert "$ca" \
    --pid "$fd_pid" --limit 60 --connections "$fd_conns" --parallel 100 --open-timeout 5 \
    --probe "$(probe_cmd "$fd_port")" --probes 1 --probe-max 5 2>"$work/fd-client.err") || true
line=$(printf '%s\n' "$out" | tail -n 1)
limit_text="ulimit -n $fd_ulimit (server's limit $fd_limit)"
case "$line" in
"ok "*) report ok fd-exhaustion "$limit_text: ${line#ok }" ;;
"FAIL "*) report FAIL fd-exhaustion "$limit_text: ${line#FAIL }" ;;
*) report FAIL fd-exhaustion "no result: $(tail -n 1 "$work/fd-client.err")" ;;
esac
kill -0 "$fd_pid" 2>/dev/null ||
    report FAIL fd-exhaustion "the second instance exited: $(tail -n 2 "$work/fd.log")"
stop_pid "$fd_pid"
fd_pid=""

# 10. Sustained load on the fixed-body virtual host, RSS sampled every second.
: >"$work/rss.samples"
(
    for _ in $(seq $((load_secs + 2))); do
        rss "$server_pid" >>"$work/rss.samples"
        echo >>"$work/rss.samples"
        sleep 1
    done
) &
sampler_pid=$!
timeout -k 5 $((load_secs + 60)) h2load -c 100 -m 10 -D "$load_secs" \
    --connect-to "127.0.0.1:$port" "https://fixed.localhost:$port/" \
    >"$work/h2load.out" 2>&1 || true
stop_pid "$sampler_pid"
sampler_pid=""
# "requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout"
read -r total succeeded failed errored timeouts < <(awk '/^requests:/ {
    gsub(",", ""); print $2, $8, $10, $12, $14 }' "$work/h2load.out") || true
codes=$(sed -n 's/^status codes: //p' "$work/h2load.out")
rate=$(grep -o '[0-9.]* req/s' "$work/h2load.out" | head -n 1 || true)
# RSS after warm-up (the first 20 % of the samples): min, max, and whether it is flat, that
# is moves by no more than 10 MB or 20 %, whichever is larger.
read -r rss_n rss_min rss_max flat < <(grep -v '^$' "$work/rss.samples" | awk '
    { v[NR] = $1 }
    END {
        skip = int(NR / 5); min = -1; max = -1
        for (i = skip + 1; i <= NR; i++) {
            if (min < 0 || v[i] < min) min = v[i]
            if (v[i] > max) max = v[i]
        }
        lim = min * 0.2; if (lim < 10) lim = 10
        flat = (min > 0 && max - min <= lim) ? "yes" : "no"
        printf "%d %.1f %.1f %s\n", NR - skip, min, max, flat
    }')
figure="${total:-?} requests in $load_secs s (${rate:-? req/s}), ${failed:-?} failed,"
figure+=" ${errored:-?} errored, ${timeouts:-?} timeout (${codes:-no status codes});"
figure+=" RSS after warm-up $rss_min-$rss_max MB over $rss_n samples"
[ -n "${total:-}" ] || figure+="; h2load: $(tail -n 1 "$work/h2load.out")"
if [ "${total:-0}" -gt 0 ] && [ "$failed" = 0 ] && [ "$errored" = 0 ] &&
    [ "$timeouts" = 0 ] && [ "$succeeded" = "$total" ] && [ "$flat" = yes ]; then
    report ok sustained-load "$figure"
else
    report FAIL sustained-load "$figure"
fi
server_alive sustained-load

echo "stress ($mode): server RSS at the end $(rss "$server_pid") MB; $failures check(s) failed"
[ "$failures" = 0 ]
