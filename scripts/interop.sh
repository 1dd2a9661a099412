#!/usr/bin/env bash
# Interop with real clients: start `misdirect serve` (the embedded default) on a free port
# and check with curl (HTTP/1.1 and HTTP/2) and nghttp that every printed example answers
# with the status it prints; then a configuration in front of an application (python3's
# http.server), with a plain listener (HTTP/1.1, h2c) and an https redirect listener.
# Installs curl and nghttp2-client with apt-get when missing.
# Exits non-zero on the first mismatch; always stops the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v nghttp >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "interop: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo build --release --locked -p misdirect-server
bin=target/release/misdirect

work=$(mktemp -d)
server_pid=""
upstream_pid=""
cleanup() {
    if [ -n "$upstream_pid" ]; then kill "$upstream_pid" 2>/dev/null || true; fi
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    printf '\n*** interop FAILED: %s ***\n' "$*" >&2
    echo "--- server stderr ---" >&2
    tail -n 40 "$work/stderr" >&2 || true
    exit 1
}

RUST_LOG=warn "$bin" serve --port 0 --out-dir "$work/files" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 300); do
    [ "$(grep -c '^curl ' "$work/stdout" 2>/dev/null || true)" -ge 5 ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
done
[ "$(grep -c '^curl ' "$work/stdout")" -ge 5 ] || fail "the server printed no curl examples"
cat "$work/stdout"

checks=0
check() { # what, expected status, actual status
    checks=$((checks + 1))
    if [ "$2" != "$3" ]; then
        fail "$1: expected $2, got $3"
    fi
    printf 'ok   %-60s %s\n' "$1" "$3"
}

# Each printed example, exactly as printed, over HTTP/1.1 and HTTP/2.
expect=""
while IFS= read -r line; do
    case "$line" in
    "# expect "*)
        expect=$line
        ;;
    "curl "*)
        status=$(printf '%s' "$expect" | awk '{print $3}' | tr -d ':')
        reason=$(printf '%s' "$expect" | awk '{print $4}' | tr -d ':')
        for version in --http1.1 --http2; do
            out=$(eval "$line -sS $version -o '$work/body' -w '%{http_code} %{http_version}'") ||
                fail "curl failed: $line $version"
            check "example ${version#--} ${line##* }$(printf '%s' "$line" | grep -o "Host: [^']*" || true)" \
                "$status" "${out%% *}"
            [ "$version" = --http2 ] && [ "${out##* }" != 2 ] && fail "no HTTP/2 for: $line"
            if [ "$status" = 421 ] && [ -n "$reason" ]; then
                grep -q "Reason: $reason" "$work/body" || fail "421 body lacks reason $reason: $line"
            fi
        done
        expect=""
        ;;
    esac
done <"$work/stdout"

port=$(grep -o 'https://127.0.0.1:[0-9]*' "$work/stdout" | head -n 1 | sed 's/.*://')
[ -n "$port" ] || fail "no port in the banner"
ca="$work/files/ca.pem"
cert="$work/files/client.pem"
key="$work/files/client.key"
resolve=()
for name in a.localhost b.localhost c.localhost secure.localhost x.wild.localhost; do
    resolve+=(--resolve "$name:$port:127.0.0.1")
done
status() { # curl arguments...
    curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" "${resolve[@]}" "$@"
}

# More curl cases: wildcard, port handling, normalisation, Connection: close after 421.
for version in --http1.1 --http2; do
    check "wildcard vhost ($version)" 200 "$(status "$version" "https://x.wild.localhost:$port/")"
    check "wildcard sibling coalesced onto a.localhost is 421 ($version)" 421 \
        "$(status "$version" -H "Host: y.wild.localhost:$port" "https://a.localhost:$port/")"
    check "wrong port in Host is 421 ($version)" 421 \
        "$(status "$version" -H "Host: a.localhost:1" "https://a.localhost:$port/")"
    check "uppercase Host with trailing dot ($version)" 200 \
        "$(status "$version" -H "Host: B.LOCALHOST.:$port" "https://a.localhost:$port/")"
    check "unknown host is 421 ($version)" 421 \
        "$(status "$version" -H "Host: nobody.localhost:$port" "https://a.localhost:$port/")"
    check "client cert on secure, then b is served ($version)" 200 \
        "$(status "$version" --cert "$cert" --key "$key" -H "Host: b.localhost:$port" "https://secure.localhost:$port/")"
    check "HEAD coalesced ($version)" 200 \
        "$(status "$version" -I -H "Host: b.localhost:$port" "https://a.localhost:$port/")"
done
headers=$(curl -sS -D - -o /dev/null --http1.1 --cacert "$ca" "${resolve[@]}" \
    -H "Host: c.localhost:$port" "https://a.localhost:$port/")
printf '%s' "$headers" | grep -qi '^connection: close' || fail "no Connection: close after an HTTP/1.1 421"
check "HTTP/1.1 421 carries Connection: close" yes yes
# nghttp over HTTP/2. nghttp sends the `:authority` override as its SNI too, so each of
# these is a connection made for its authority.
nghttp_status() { # nghttp arguments...
    nghttp -v --no-verify-peer "$@" 2>&1 | grep -o ':status: [0-9]*' | head -n 1 | awk '{print $2}'
}
check "nghttp: a.localhost" 200 "$(nghttp_status -H ":authority: a.localhost:$port" "https://127.0.0.1:$port/")"
check "nghttp: c.localhost on its own connection" 200 \
    "$(nghttp_status -H ":authority: c.localhost:$port" "https://127.0.0.1:$port/")"
check "nghttp: a port the listener does not serve is 421" 421 \
    "$(nghttp_status -H ":authority: a.localhost:1" "https://127.0.0.1:$port/")"
# RFC 9113 §8.3.1, §8.1.1: malformed, so the stream is reset with PROTOCOL_ERROR.
reset=$(nghttp -v --no-verify-peer -H "host: c.localhost:$port" "https://127.0.0.1:$port/" 2>&1 |
    grep -c 'recv RST_STREAM.*' || true)
reset_code=$(nghttp -v --no-verify-peer -H "host: c.localhost:$port" "https://127.0.0.1:$port/" 2>&1 |
    grep -A1 'recv RST_STREAM' | grep -o 'PROTOCOL_ERROR' | head -n 1)
check "nghttp: host differing from :authority resets the stream" "1 PROTOCOL_ERROR" "$reset $reset_code"
# The ORIGIN frame (RFC 8336): nghttp decodes it. A connection made for a.localhost
# announces exactly the origins served on it: a and b (the shared certificate), not
# secure.localhost (it needs a client certificate this connection has not got).
origins=$(nghttp -v --no-verify-peer -H ":authority: a.localhost:$port" "https://127.0.0.1:$port/" 2>&1 |
    awk '/recv ORIGIN frame/ {on = 1; next} on && /^ *\[https:/ {gsub(/[][ ]/, ""); print; next} {on = 0}' |
    sort | tr '\n' ' ')
check "nghttp: ORIGIN frame lists the origins served" \
    "https://a.localhost:$port https://b.localhost:$port " "$origins"
origins=$(nghttp -v --no-verify-peer -H ":authority: c.localhost:$port" "https://127.0.0.1:$port/" 2>&1 |
    awk '/recv ORIGIN frame/ {on = 1; next} on && /^ *\[https:/ {gsub(/[][ ]/, ""); print; next} {on = 0}' |
    tr '\n' ' ')
check "nghttp: c.localhost's own certificate: ORIGIN lists c only" "https://c.localhost:$port " "$origins"
# Two streams on one HTTP/2 connection.
streams=$(nghttp -v --no-verify-peer -H ":authority: a.localhost:$port" \
    "https://127.0.0.1:$port/" "https://127.0.0.1:$port/x" 2>&1 | grep -c ':status: 200' || true)
check "nghttp: two streams on one connection" 2 "$streams"

# Graceful shutdown on SIGTERM: exit status 0.
kill -TERM "$server_pid"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then fail "the server did not stop on SIGTERM"; fi
wait "$server_pid" && code=0 || code=$?
server_pid=""
check "SIGTERM exit status" 0 "$code"

# --- In front of an application, plain listeners and the https redirect ---------------
# An upstream (python3's http.server over a directory), a TLS listener whose app.localhost
# proxies to it, a plain listener (HTTP/1.1 and h2c) and a redirect listener.
mkdir -p "$work/app"
printf 'hello from the app\n' >"$work/app/hello.txt"
python3 -u -m http.server --bind 127.0.0.1 --directory "$work/app" 0 >"$work/upstream.out" 2>&1 &
upstream_pid=$!
for _ in $(seq 100); do grep -q 'port [0-9]' "$work/upstream.out" 2>/dev/null && break; sleep 0.1; done
upstream_port=$(grep -o 'port [0-9]*' "$work/upstream.out" | head -n 1 | awk '{print $2}')
[ -n "$upstream_port" ] || fail "the upstream did not start"
cat >"$work/front.toml" <<TOML
[[listener]]
addr = "127.0.0.1:0"
public_ports = [443]

[[listener]]
addr = "127.0.0.1:0"
tls = false
public_ports = [80]

[[listener]]
addr = "127.0.0.1:0"
tls = false
public_ports = [80]
redirect = "https"

[[vhost]]
name = "app.localhost"
self_signed = true
respond = { proxy = "http://127.0.0.1:$upstream_port" }

[[vhost]]
name = "static.localhost"
self_signed = true
TOML
RUST_LOG=info "$bin" serve --log-format json --config "$work/front.toml" >"$work/stdout2" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 300); do
    [ "$(grep -c '"message":"listening"' "$work/stderr" 2>/dev/null || true)" -ge 3 ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the front server exited at start"
    sleep 0.1
done
mapfile -t fronts < <(grep '"message":"listening"' "$work/stderr" | grep -o '"addr":"[^"]*"' | sed 's/.*:\([0-9]*\)"$/\1/')
[ "${#fronts[@]}" -ge 3 ] || fail "the front server did not log three listeners"
tls_port=${fronts[0]} plain_port=${fronts[1]} redirect_port=${fronts[2]}

for version in --http1.1 --http2; do
    body=$(curl -sS -k $version --connect-to "app.localhost:443:127.0.0.1:$tls_port" https://app.localhost/hello.txt) ||
        fail "curl through the proxy ($version)"
    check "proxy: TLS front to the app ($version)" "hello from the app" "$body"
done
body=$(curl -sS --connect-to "app.localhost:80:127.0.0.1:$plain_port" http://app.localhost/hello.txt) ||
    fail "curl to the plain listener"
check "plain listener: HTTP/1.1 to the app" "hello from the app" "$body"
out=$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
    --connect-to "app.localhost:80:127.0.0.1:$plain_port" http://app.localhost/hello.txt) ||
    fail "curl h2c to the plain listener"
check "plain listener: h2c with prior knowledge (curl)" "200 2" "$out"
check "plain listener: h2c (nghttp)" 200 \
    "$(nghttp -v -H ":authority: app.localhost" "http://127.0.0.1:$plain_port/hello.txt" 2>&1 | grep -o ':status: [0-9]*' | head -n 1 | awk '{print $2}')"
location=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' \
    --connect-to "static.localhost:80:127.0.0.1:$redirect_port" 'http://static.localhost/x?y=1')
check "redirect listener: 308 to https" "308 https://static.localhost/x?y=1" "$location"
kill "$upstream_pid" 2>/dev/null || true
wait "$upstream_pid" 2>/dev/null || true
check "proxy: the app is down: 502" 502 \
    "$(curl -sS -k -o /dev/null -w '%{http_code}' --connect-to "app.localhost:443:127.0.0.1:$tls_port" https://app.localhost/hello.txt)"
kill -TERM "$server_pid"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
wait "$server_pid" 2>/dev/null || true
server_pid=""

printf '\ninterop: %s checks passed\n' "$checks"
