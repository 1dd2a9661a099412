#!/usr/bin/env bash
# Head to head: misdirect against nginx and HAProxy, each serving the same four virtual
# hosts with the same certificates on loopback, under h2load (TLS 1.3, HTTP/2).
#
#   scripts/bench-servers.sh
#
# What it measures, every server under the same conditions (rounds interleaved, the order
# of the servers rotated from round to round):
#   - the 200 path (a.localhost on its own connection) and the 421 path (:authority
#     secure.localhost, which requires a client certificate, on a connection made for
#     a.localhost without one): h2load -n N -c 50 -m 10 -t 1; req/s, mean and p99 request
#     time (from h2load's per-request log), answers other than the expected status, and
#     the server's CPU time per request;
#   - new connections: full TLS 1.3 handshakes with one request each (h2load -c C -n C -m 1,
#     so that each client makes one connection for one request; HS_RUNS runs a round);
#   - idle memory: the growth of the server's RSS with IDLE idle TLS HTTP/2 connections
#     (TLS, ALPN h2, the connection preface and SETTINGS, then nothing), per connection;
#     misdirect and nginx (HAProxy's maxconn, half the descriptor limit, may be too low);
#   - what the policy costs: misdirect built with the bench-only
#     `--cfg misdirect_bench_no_policy` (every request served by the connection's virtual
#     host, no 421 decision) on the 200 path beside the normal build.
# Every run also reads the server's CPU time (user + system, all its processes) from /proc:
# CPU per request and per handshake compare servers even when other work on the machine
# moves req/s about.
#
# Servers: misdirect with its defaults (RUST_LOG=info, standard error to a file as a
# service manager keeps it); nginx as packaged, access log on (combined format, to a
# file), once with `worker_processes auto` and once with `worker_processes 1`, with
# keepalive_requests raised (h2load does not reconnect after nginx's GOAWAY at 1000
# requests); HAProxy as packaged (nbthread = the CPUs), `option httplog` to standard
# output kept in a file, a crt-list, host routing with `http-request return`, and the
# usual SNI = Host rule that answers 421 otherwise.
#
# Environment: ROUNDS (default 3), N (requests per load run, default 300000), C (clients
# per handshake run, default 200), HS_RUNS (handshake runs per server and round, default
# 10), IDLE (idle connections, default 10000; 0 skips), MISDIRECT (a built binary: skips
# the build), MISDIRECT_NO_POLICY (a `--cfg misdirect_bench_no_policy` build; unset with
# MISDIRECT set: the policy cost is not measured), SERVERS (default "misdirect nginx-auto
# nginx-1 haproxy"), NICE (the servers' and clients' niceness as root, default -10),
# KEEP=1 keeps the work directory. Results: a markdown table on standard output (and in
# WORK/table.md, every run's numbers in WORK/*.tsv, with KEEP=1).
#
# Installs nginx, haproxy, nghttp2-client, openssl, curl and python3 with apt-get when
# missing. Not part of CI: a default run takes about ten minutes on two cores, plus the
# builds (the no-policy one in target/bench-no-policy, from scratch the first time).
set -euo pipefail
# The whole script is one group, read before any of it runs: editing the file while it runs
# changes nothing in the run.
{

rounds=${ROUNDS:-3}
n=${N:-300000}
hs_clients=${C:-200}
hs_runs=${HS_RUNS:-10}
idle=${IDLE:-10000}
servers=${SERVERS:-misdirect nginx-auto nginx-1 haproxy}
root=$(cd "$(dirname "$0")/.." && pwd)

die() {
    echo "bench-servers: $*" >&2
    exit 1
}
say() { echo "bench-servers: $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}; run as root or install them first"
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        die "apt-get install ${need[*]} failed"
    # The packages start their services where an init system runs; ours use other ports,
    # but stop them so that they do not take CPU from the servers measured.
    for s in nginx haproxy; do
        if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
    done
fi
for t in nginx haproxy h2load openssl curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t is still missing after apt-get install"
done

# The servers and the clients run at a higher priority (NICE, default -10, as root) than
# whatever else the machine runs, such as compilations, so that those disturb every server
# alike and less. NICE=0 runs them as everything else.
prio=(nice -n "${NICE:--10}")
[ "$(id -u)" = 0 ] || prio=(nice -n 0)

# Ten thousand idle connections need as many descriptors in the client and the servers.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$idle" -eq 0 ] || [ "$(ulimit -n)" -gt $((idle + 1000)) ] ||
    die "ulimit -n is $(ulimit -n): too low for IDLE=$idle (raise the hard limit or lower IDLE)"

# --- misdirect builds ----------------------------------------------------------------------
if [ -n "${MISDIRECT:-}" ]; then
    misdirect=$MISDIRECT
    no_policy=${MISDIRECT_NO_POLICY:-}
else
    cd "$root"
    target=${CARGO_TARGET_DIR:-$root/target}
    # The policy-free build is a cfg, not a feature (`--all-features` must never turn the
    # policy off), in a target dir of its own so the two builds do not rebuild each other.
    say "building misdirect with --cfg misdirect_bench_no_policy (release, $target/bench-no-policy)"
    RUSTFLAGS="${RUSTFLAGS:-} --cfg misdirect_bench_no_policy" CARGO_TARGET_DIR="$target/bench-no-policy" \
        cargo build --release -q -p misdirect-server ||
        die "cargo build --cfg misdirect_bench_no_policy failed"
    say "building misdirect (release)"
    cargo build --release -q -p misdirect-server || die "cargo build failed"
    misdirect=$target/release/misdirect
    no_policy=$target/bench-no-policy/release/misdirect
fi
[ -x "$misdirect" ] || die "misdirect binary $misdirect is not executable"
if [ -n "$no_policy" ]; then
    [ -x "$no_policy" ] || die "no-policy binary $no_policy is not executable"
    servers="$servers misdirect-no-policy"
fi

work=$(mktemp -d /tmp/bench-servers.XXXXXX)
chmod 755 "$work" # nginx workers run as nobody; they open nothing here, but may stat
# Copies, so that a build in the shared target directory cannot swap them mid-run (the
# checks before each run would catch a swapped no-policy build: it answers 200 to the 421
# path).
mkdir -p "$work/bin"
cp "$misdirect" "$work/bin/misdirect"
misdirect=$work/bin/misdirect
if [ -n "$no_policy" ]; then
    cp "$no_policy" "$work/bin/misdirect-no-policy"
    no_policy=$work/bin/misdirect-no-policy
fi
pids=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
say "work directory $work"

# --- certificates, once, for every server ----------------------------------------------------
# The same shape as `misdirect serve`'s embedded set-up (a demo CA; one ECDSA P-256
# certificate for a, b and secure.localhost; c.localhost its own; a client certificate),
# written as files because the embedded set-up keeps its server keys in memory.
certs=$work/certs
mkdir -p "$certs"
(
    cd "$certs"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out ca.pem 2>/dev/null
    leaf() { # name eku sans...
        local name=$1 eku=$2 san=""
        shift 2
        for h in "$@"; do san="${san:+$san,}DNS:$h"; done
        openssl ecparam -name prime256v1 -genkey -noout -out "$name.ec" 2>/dev/null
        openssl pkcs8 -topk8 -nocrypt -in "$name.ec" -out "$name.key"
        {
            echo "basicConstraints=CA:FALSE"
            echo "extendedKeyUsage=$eku"
            [ -z "$san" ] || echo "subjectAltName=$san"
        } >"$name.ext"
        openssl req -new -key "$name.key" -subj "/CN=${1:-bench client}" -out "$name.csr" 2>/dev/null
        openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
        cat "$name.crt" ca.pem >"$name.pem"            # chain, end-entity first
        cat "$name.pem" "$name.key" >"$name.haproxy.pem" # HAProxy wants both in one file
    }
    leaf shared serverAuth a.localhost b.localhost secure.localhost
    leaf c serverAuth c.localhost
    leaf client clientAuth
) || die "certificate generation with openssl failed"
chmod 644 "$certs"/*

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- configurations ----------------------------------------------------------------------
write_misdirect() { # port
    cat >"$work/misdirect.toml" <<EOF
[[listener]]
addr = "127.0.0.1:$1"

[[vhost]]
name = "a.localhost"
cert = "$certs/shared.pem"
key = "$certs/shared.key"

[[vhost]]
name = "b.localhost"
cert = "$certs/shared.pem"
key = "$certs/shared.key"

[[vhost]]
name = "c.localhost"
cert = "$certs/c.pem"
key = "$certs/c.key"

[[vhost]]
name = "secure.localhost"
cert = "$certs/shared.pem"
key = "$certs/shared.key"
client_auth = { ca = "$certs/ca.pem", required = true }
EOF
}

write_nginx() { # port workers
    local port=$1 workers=$2 h
    {
        cat <<EOF
worker_processes $workers;
# Room for the idle-connection test (Debian's default is 768 connections a worker).
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 16384; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log $work/nginx-access.log combined;
    # The one change to nginx's defaults: it closes a connection after 1000 requests
    # (keepalive_requests), and h2load does not reconnect, so most requests would fail.
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx-tmp;
    proxy_temp_path $work/nginx-tmp;
    fastcgi_temp_path $work/nginx-tmp;
    uwsgi_temp_path $work/nginx-tmp;
    scgi_temp_path $work/nginx-tmp;
EOF
        for h in a b c secure; do
            local crt=shared
            [ "$h" = c ] && crt=c
            echo "    server {"
            if [ "$h" = a ]; then
                echo "        listen 127.0.0.1:$port ssl http2 default_server;"
            else
                echo "        listen 127.0.0.1:$port ssl http2;"
            fi
            echo "        server_name $h.localhost;"
            echo "        ssl_certificate $certs/$crt.pem;"
            echo "        ssl_certificate_key $certs/$crt.key;"
            if [ "$h" = secure ]; then
                echo "        ssl_verify_client on;"
                echo "        ssl_client_certificate $certs/ca.pem;"
            fi
            printf '        location / { default_type text/plain; return 200 "vhost %s.localhost\\n"; }\n' "$h"
            echo "    }"
        done
        echo "}"
    } >"$work/nginx.conf"
}

write_haproxy() { # port
    local port=$1 h
    cat >"$work/crt-list.txt" <<EOF
$certs/shared.haproxy.pem a.localhost b.localhost
$certs/c.haproxy.pem c.localhost
$certs/shared.haproxy.pem [verify required ca-file $certs/ca.pem] secure.localhost
EOF
    {
        cat <<EOF
global
    # HAProxy wants two descriptors a connection (the backend's too) for maxconn.
    maxconn $((($(ulimit -n) - 500) / 2))
    log stdout format raw local0
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend tls
    bind 127.0.0.1:$port ssl crt-list $work/crt-list.txt alpn h2,http/1.1
    http-request set-var(txn.host) req.hdr(host),field(1,:),lower
    # A request for another host than the connection was made for (the SNI) is refused.
    http-request return status 421 content-type text/plain string "misdirected request\n" if { ssl_fc_sni -m found } !{ ssl_fc_sni,strcmp(txn.host) eq 0 }
EOF
        for h in a b c secure; do
            printf '    http-request return status 200 content-type text/plain string "vhost %s.localhost\\n" if { var(txn.host) -m str %s.localhost }\n' "$h" "$h"
        done
        printf '    http-request return status 404 content-type text/plain string "not found\\n"\n'
    } >"$work/haproxy.cfg"
}

# --- starting and stopping ---------------------------------------------------------------
server_pid=""
server_port=""
start_server() { # name
    local name=$1
    server_port=$(free_port)
    rm -f "$work"/*.log "$work/nginx.pid"
    mkdir -p "$work/nginx-tmp"
    case $name in
        misdirect | misdirect-no-policy)
            local bin=$misdirect
            [ "$name" = misdirect-no-policy ] && bin=$no_policy
            write_misdirect "$server_port"
            RUST_LOG=info "${prio[@]}" "$bin" serve --config "$work/misdirect.toml" \
                >"$work/misdirect-out.log" 2>"$work/misdirect-err.log" &
            server_pid=$!
            ;;
        nginx-auto | nginx-1)
            write_nginx "$server_port" "${name#nginx-}"
            nginx -t -q -c "$work/nginx.conf" || die "nginx rejects $work/nginx.conf"
            "${prio[@]}" nginx -c "$work/nginx.conf" -g "daemon off;" 2>"$work/nginx-stderr.log" &
            server_pid=$!
            ;;
        haproxy)
            write_haproxy "$server_port"
            haproxy -c -q -f "$work/haproxy.cfg" || die "haproxy rejects $work/haproxy.cfg"
            "${prio[@]}" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy-out.log" 2>&1 &
            server_pid=$!
            ;;
        *) die "unknown server $name" ;;
    esac
    pids+=("$server_pid")

    for _ in $(seq 100); do
        [ "$(status_of a.localhost a.localhost)" = 200 ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$work"/*.log >&2 || true
    die "$name did not come up on 127.0.0.1:$server_port"
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    local p kept=()
    for p in "${pids[@]}"; do [ "$p" = "$server_pid" ] || kept+=("$p"); done
    pids=("${kept[@]}")
}

# The server's processes: nginx's master and its workers.
server_pids() {
    echo "$server_pid"
    pgrep -P "$server_pid" || true
}

# CPU time (user + system, in clock ticks) of the server's processes.
cpu_ticks() {
    local p total=0
    for p in $(server_pids); do
        # Fields 14 and 15 of /proc/PID/stat, counted after the parenthesised name.
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# HTTP status of one HTTP/2 request over TLS 1.3 for `host` on a connection made for `sni`.
status_of() { # sni host [curl options...]
    local sni=$1 host=$2
    shift 2
    # A refused handshake (secure.localhost without a certificate) answers nothing.
    {
        curl -sS -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 --tlsv1.3 --http2 \
            --cacert "$certs/ca.pem" --connect-to "$sni:$server_port:127.0.0.1:$server_port" \
            -H "Host: $host:$server_port" "$@" "https://$sni:$server_port/" 2>/dev/null || true
    } | awk '$2 == "2" {print $1}'
}

check_server() { # name
    local name=$1 got
    local -a want=(
        "a.localhost a.localhost 200"
        "a.localhost secure.localhost 421"
        "c.localhost c.localhost 200"
    )
    if [ "$name" = misdirect-no-policy ]; then
        want=("a.localhost a.localhost 200" "a.localhost secure.localhost 200")
    fi
    local w
    for w in "${want[@]}"; do
        # shellcheck disable=SC2086 # three words: sni host status
        set -- $w
        got=$(status_of "$1" "$2")
        [ "$got" = "$3" ] ||
            die "$name answered ${got:-nothing} (want $3 over HTTP/2) for $2 on a connection for $1"
    done
    if [ "$name" != misdirect-no-policy ]; then
        got=$(status_of secure.localhost secure.localhost --cert "$certs/client.crt" --key "$certs/client.key")
        [ "$got" = 200 ] || die "$name answered ${got:-nothing} to secure.localhost with the client certificate"
        got=$(status_of secure.localhost secure.localhost)
        [ "$got" != 200 ] || die "$name served secure.localhost without a client certificate"
    fi
}

load() { cut -d ' ' -f 1 /proc/loadavg; }

# --- the helpers in Python -----------------------------------------------------------------
cat >"$work/latency.py" <<'EOF'
# mean and p99 of the request times (microseconds, third column) in an h2load --log-file
import sys
t = sorted(int(line.split("\t")[2]) for line in open(sys.argv[1]) if line.count("\t") == 2)
if not t:
    print("nan nan")
else:
    p99 = t[min(len(t) - 1, (99 * len(t) + 99) // 100 - 1)]
    print(f"{sum(t) / len(t) / 1000:.2f} {p99 / 1000:.2f}")
EOF

cat >"$work/idle.py" <<'EOF'
# Opens N TLS connections with ALPN h2, sends the HTTP/2 preface and an empty SETTINGS,
# acknowledges the server's SETTINGS and then holds them idle. Prints the server's RSS
# (summed over the PIDs) before and with the connections, and how many were open.
import asyncio, resource, ssl, sys, time
port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pids = [int(p) for p in sys.argv[4].split(",")]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def rss_kib():
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total

ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
open_conns, failed = [], 0

async def one(sem):
    global failed
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="a.localhost"), 20)
            if w.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
                raise RuntimeError("no h2")
            w.write(PREFACE)
            head = await asyncio.wait_for(r.readexactly(9), 20)
            if head[3] != 4:
                raise RuntimeError("first frame is not SETTINGS")
            await r.readexactly(int.from_bytes(head[:3], "big"))
            w.write(SETTINGS_ACK)
            await w.drain()
            open_conns.append((r, w))
        except Exception:
            failed += 1

async def main():
    before = rss_kib()
    sem = asyncio.Semaphore(100)
    start = time.monotonic()
    await asyncio.gather(*(one(sem) for _ in range(n)))
    took = time.monotonic() - start
    await asyncio.sleep(2)
    # Count the ones the server has not closed: a closed one reads EOF (or fails) at once,
    # an open one has frames to read (an ORIGIN frame, a SETTINGS ACK) or nothing.
    alive = 0
    for r, w in open_conns:
        try:
            if await asyncio.wait_for(r.read(1 << 16), 0.001):
                alive += 1
        except asyncio.TimeoutError:
            alive += 1
        except Exception:
            pass
    with_conns = rss_kib()
    print(f"{before} {with_conns} {alive} {failed} {took:.1f}")
    for r, w in open_conns:
        w.transport.abort()

asyncio.run(main())
EOF

# --- the runs ----------------------------------------------------------------------------
runs=$work/runs.tsv
printf 'round\tserver\tpath\treq_s\tmean_ms\tp99_ms\terrors\tcpu_us_per_req\tload\n' >"$runs"
hs=$work/handshakes.tsv
printf 'round\tserver\thandshakes_s\terrors\tcpu_us_per_handshake\tload\n' >"$hs"

load_run() { # round name path
    local round=$1 name=$2 path=$3 extra=() out c0 c1 rps codes class errors lat cpu
    [ "$path" = 421 ] && extra=(-H ":authority: secure.localhost:$server_port")
    local l
    l=$(load)
    c0=$(cpu_ticks)
    out=$("${prio[@]}" h2load -n "$n" -c 50 -m 10 -t 1 --log-file="$work/h2load.log" \
        --connect-to "127.0.0.1:$server_port" "${extra[@]}" \
        "https://a.localhost:$server_port/" 2>&1) || die "h2load failed against $name: $out"
    c1=$(cpu_ticks)
    rps=$(printf '%s\n' "$out" | sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
    codes=$(printf '%s\n' "$out" | grep '^status codes:') || die "no status line from h2load: $out"
    class=2xx
    [ "$path" = 421 ] && [ "$name" != misdirect-no-policy ] && class=4xx
    errors=$((n - $(printf '%s\n' "$codes" | grep -o "[0-9]* $class" | cut -d ' ' -f 1)))
    lat=$(python3 "$work/latency.py" "$work/h2load.log")
    cpu=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$path" "$rps" \
        "${lat% *}" "${lat#* }" "$errors" "$cpu" "$l" >>"$runs"
    say "round $round $name path $path: $rps req/s, mean/p99 ${lat/ //} ms, $errors errors, $cpu µs CPU/req, load $l"
}

handshake_run() { # round name
    local round=$1 name=$2 out t total_t=0 total=0 errors=0 c0 c1 l ok
    l=$(load)
    c0=$(cpu_ticks)
    for _ in $(seq "$hs_runs"); do
        out=$("${prio[@]}" h2load -n "$hs_clients" -c "$hs_clients" -m 1 -t 1 \
            --connect-to "127.0.0.1:$server_port" "https://a.localhost:$server_port/" 2>&1) ||
            die "h2load (handshakes) failed against $name: $out"
        # "finished in 123.45ms," or "1.23s,"
        t=$(printf '%s\n' "$out" | sed -n 's/^finished in \([0-9.]*\)\(m\?s\),.*/\1 \2/p' |
            awk '{print ($2 == "ms") ? $1 / 1000 : $1}')
        ok=$(printf '%s\n' "$out" | sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p')
        total_t=$(awk -v a="$total_t" -v b="$t" 'BEGIN {print a + b}')
        total=$((total + hs_clients))
        errors=$((errors + hs_clients - ok))
    done
    c1=$(cpu_ticks)
    local rate cpu
    rate=$(awk -v n="$total" -v t="$total_t" 'BEGIN {printf "%.0f", n / t}')
    cpu=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$total" 'BEGIN {printf "%.0f", d / hz * 1e6 / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rate" "$errors" "$cpu" "$l" >>"$hs"
    say "round $round $name handshakes: $rate/s, $errors errors, $cpu µs CPU/handshake, load $l"
}

read -r -a order <<<"$servers"
say "priority: ${prio[*]}"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
start_load=$(cut -d ' ' -f 1-3 /proc/loadavg)
say "machine: $machine; uptime: $(uptime)"
for round in $(seq "$rounds"); do
    # Rotate the order so that no server always runs first or last in a round.
    k=$(((round - 1) % ${#order[@]}))
    this=("${order[@]:$k}" "${order[@]:0:$k}")
    for name in "${this[@]}"; do
        start_server "$name"
        check_server "$name"
        load_run "$round" "$name" 200
        [ "$name" = misdirect-no-policy ] || load_run "$round" "$name" 421
        handshake_run "$round" "$name"
        stop_server
    done
done

idle_tsv=$work/idle.tsv
printf 'server\trss_before_kib\trss_with_kib\topen\tfailed\tkib_per_conn\n' >"$idle_tsv"
if [ "$idle" -gt 0 ]; then
    for name in "${order[@]}"; do
        # Ours against nginx: HAProxy's maxconn (half the descriptor limit) may be too low.
        case $name in misdirect | nginx-*) ;; *) continue ;; esac
        start_server "$name"
        sleep 1
        read -r before with alive failed took < <("${prio[@]}" python3 "$work/idle.py" "$server_port" "$idle" \
            "$certs/ca.pem" "$(server_pids | paste -sd, -)")
        per=$(awk -v a="$before" -v b="$with" -v n="$alive" 'BEGIN {printf "%.1f", n ? (b - a) / n : 0}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$before" "$with" "$alive" "$failed" "$per" >>"$idle_tsv"
        say "$name idle: $alive of $idle open ($failed failed, opened in ${took}s), RSS $before → $with KiB, $per KiB/connection"
        [ "$alive" -eq "$idle" ] || say "warning: $name kept $alive of $idle idle connections"
        stop_server
    done
fi

# --- the table ---------------------------------------------------------------------------
{
    echo "Machine: $machine, $(uname -r); load average at the start: $start_load, at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)."
    echo "Versions: misdirect $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'),"\
        "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -n 1 | cut -d ' ' -f 1-3),"\
        "$(h2load --version | head -n 1), $(openssl version | cut -d ' ' -f 1-2), Python $(python3 -c 'import platform; print(platform.python_version())')."
    echo
} >"$work/head.md"
python3 - "$runs" "$hs" "$idle_tsv" "$n" "$rounds" >"$work/body.md" <<'EOF'
import csv, statistics, sys
runs, hs, idle, n, rounds = sys.argv[1:]
med = statistics.median
R = list(csv.DictReader(open(runs), delimiter="\t"))
H = list(csv.DictReader(open(hs), delimiter="\t"))
I = list(csv.DictReader(open(idle), delimiter="\t"))
names = list(dict.fromkeys(r["server"] for r in R))
def col(server, path, key):
    return [float(r[key]) for r in R if r["server"] == server and r["path"] == path]
label = {
    "misdirect": "misdirect (defaults, RUST_LOG=info)",
    "misdirect-no-policy": "misdirect, --cfg misdirect_bench_no_policy build",
    "nginx-auto": "nginx, worker_processes auto, access log on",
    "nginx-1": "nginx, worker_processes 1, access log on",
    "haproxy": "HAProxy, nbthread = CPUs, httplog on",
}
loads = [float(r["load"]) for r in R + H]
print(f"h2load -n {n} -c 50 -m 10 -t 1, {rounds} rounds; medians over the rounds "
      f"(load average at the runs: {min(loads):.2f}–{max(loads):.2f})\n")
print("| server | path | req/s (median) | req/s (rounds) | mean ms | p99 ms | errors | server CPU µs/req |")
print("|---|---|---|---|---|---|---|---|")
best = {}
for s in names:
    for p in ("200", "421"):
        rps = col(s, p, "req_s")
        if not rps:
            continue
        best[(s, p)] = med(rps)
        print(f"| {label.get(s, s)} | {p} | {med(rps):,.0f} | {' · '.join(f'{x:,.0f}' for x in rps)} "
              f"| {med(col(s, p, 'mean_ms')):.2f} | {med(col(s, p, 'p99_ms')):.2f} "
              f"| {sum(col(s, p, 'errors')):.0f} | {med(col(s, p, 'cpu_us_per_req')):.1f} |")
print()
print("| server | handshakes/s (median) | rounds | errors | server CPU µs/handshake |")
print("|---|---|---|---|---|")
hbest = {}
for s in names:
    rates = [float(r["handshakes_s"]) for r in H if r["server"] == s]
    hbest[s] = med(rates)
    cpu = med([float(r["cpu_us_per_handshake"]) for r in H if r["server"] == s])
    err = sum(int(r["errors"]) for r in H if r["server"] == s)
    print(f"| {label.get(s, s)} | {med(rates):,.0f} | {' · '.join(f'{x:,.0f}' for x in rates)} | {err} | {cpu:.0f} |")
print()
if I:
    print("| server | RSS before (KiB) | RSS with the idle connections (KiB) | open | KiB per idle connection |")
    print("|---|---|---|---|---|")
    for r in I:
        print(f"| {label.get(r['server'], r['server'])} | {int(r['rss_before_kib']):,} | "
              f"{int(r['rss_with_kib']):,} | {r['open']} | {r['kib_per_conn']} |")
    print()
ours = "misdirect"
def lat(s, p, k):
    return med(col(s, p, k))
print("| ratio | target | value |")
print("|---|---|---|")
ng = [s for s in ("nginx-auto", "nginx-1") if s in names]
for p in ("200", "421"):
    if ng and (ours, p) in best:
        peer = max(ng, key=lambda s: best[(s, p)])
        print(f"| misdirect / best nginx ({peer}), req/s, {p} path | ≥ 1.0× | {best[(ours, p)] / best[(peer, p)]:.2f}× |")
        print(f"| misdirect / same nginx, p99, {p} path | ≤ 1.0× | {lat(ours, p, 'p99_ms') / lat(peer, p, 'p99_ms'):.2f}× |")
    if "haproxy" in names and (ours, p) in best:
        print(f"| misdirect / HAProxy, req/s, {p} path | – | {best[(ours, p)] / best[('haproxy', p)]:.2f}× |")
if ng and ours in hbest:
    peer = max(ng, key=lambda s: hbest[s])
    print(f"| misdirect / best nginx ({peer}), handshakes/s | ≥ 1.0× | {hbest[ours] / hbest[peer]:.2f}× |")
if "haproxy" in names and ours in hbest:
    print(f"| misdirect / HAProxy, handshakes/s | – | {hbest[ours] / hbest['haproxy']:.2f}× |")
per = {r["server"]: float(r["kib_per_conn"]) for r in I}
for s in ng:
    if ours in per and s in per and per[s] > 0:
        print(f"| misdirect / {s}, RSS per idle connection | ≤ 1.0× | {per[ours] / per[s]:.2f}× |")
def cpu(s, p):
    return med(col(s, p, "cpu_us_per_req"))
for p in ("200", "421"):
    if ng and (ours, p) in best:
        peer = min(ng, key=lambda s: cpu(s, p))
        print(f"| misdirect / leaner nginx ({peer}), server CPU per request, {p} path | ≤ 1.0× | "
              f"{cpu(ours, p) / cpu(peer, p):.2f}× ({cpu(ours, p):.1f} vs {cpu(peer, p):.1f} µs) |")
    if "haproxy" in names and (ours, p) in best:
        print(f"| misdirect / HAProxy, server CPU per request, {p} path | – | "
              f"{cpu(ours, p) / cpu('haproxy', p):.2f}× ({cpu(ours, p):.1f} vs {cpu('haproxy', p):.1f} µs) |")
def hcpu(s):
    return med([float(r["cpu_us_per_handshake"]) for r in H if r["server"] == s])
if ng and ours in hbest:
    peer = min(ng, key=hcpu)
    print(f"| misdirect / leaner nginx ({peer}), server CPU per handshake | ≤ 1.0× | "
          f"{hcpu(ours) / hcpu(peer):.2f}× ({hcpu(ours):.0f} vs {hcpu(peer):.0f} µs) |")
if ("misdirect-no-policy", "200") in best and (ours, "200") in best:
    a = col(ours, "200", "req_s")
    b = col("misdirect-no-policy", "200", "req_s")
    paired = [1 - x / y for x, y in zip(a, b)]
    print(f"| policy cost, 200 path: 1 − misdirect / no-policy build (medians) | ≤ 2 % | "
          f"{100 * (1 - best[(ours, '200')] / best[('misdirect-no-policy', '200')]):.1f} % |")
    print(f"| the same, round by round | ≤ 2 % | {' · '.join(f'{100 * x:.1f} %' for x in paired)} |")
    ca = med(col(ours, "200", "cpu_us_per_req"))
    cb = med(col("misdirect-no-policy", "200", "cpu_us_per_req"))
    print(f"| policy cost in server CPU per request, 200 path | ≤ 2 % | {100 * (ca / cb - 1):.1f} % ({ca:.1f} vs {cb:.1f} µs) |")
EOF
cat "$work/head.md" "$work/body.md" >"$work/table.md"
cat "$work/table.md"
say "raw numbers in $work (runs.tsv, handshakes.tsv, idle.tsv); KEEP=1 keeps them"
exit
}
