#!/usr/bin/env bash
# Interop with real clients: start `misdirect serve` (the embedded default) on a free port
# and check with curl (HTTP/1.1 and HTTP/2) and nghttp that every printed example answers
# with the status it prints. Installs curl and nghttp2-client with apt-get when missing.
# Exits non-zero on the first mismatch; always stops the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v nghttp >/dev/null 2>&1 || need_apt+=(nghttp2-client)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "interop: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo build --release --locked -p misdirect-server
bin=target/release/misdirect

work=$(mktemp -d)
server_pid=""
cleanup() {
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
check "nghttp: host differing from :authority is 400" 400 \
    "$(nghttp_status -H "host: c.localhost:$port" "https://127.0.0.1:$port/")"
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

printf '\ninterop: %s checks passed\n' "$checks"
