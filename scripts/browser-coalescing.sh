#!/usr/bin/env bash
# A real browser against `misdirect serve`: headless Chromium coalesces connections and
# recovers from a 421.
#
# The script makes a throwaway CA and two certificates with openssl — one for
# a.example.test, b.example.test and www.other.test, one for c.example.test — and serves
# them from two TLS listeners on free ports, one `secure` and one `strict`, with an admin
# listener for /metrics. Chromium loads https://a.example.test:SECURE/ and the page then
# loads one script at a time:
#
#   b.example.test:SECURE   coalesced: sent on the connection made for a.example.test, served
#   c.example.test:SECURE   a connection of its own (the shared certificate does not cover it)
#   a.example.test:STRICT   a connection made for a.example.test on the strict listener
#   b.example.test:STRICT   coalesced onto that connection, answered 421 sni-vhost-differs,
#                           retried by Chromium on a new connection made for b.example.test
#   www.other.test:SECURE   a cross-site name the shared certificate covers: reported, not
#                           checked (see below)
#
# and writes what loaded into its DOM, read back with --dump-dom. The script then checks:
#   - the DOM: every script loaded and ran;
#   - Chromium's net log (--log-net-log, capture mode Everything): which HTTP/2 session
#     carried each request (HTTP2_SESSION_SEND_HEADERS with its :authority, and the
#     :status that came back on that stream), that no session was made for
#     b.example.test on the secure port, that the 421 restarted the request
#     (HTTP_TRANSACTION_RESTART_MISDIRECTED_REQUEST) on a session made for b.example.test,
#     that every certificate verified without an error (cert_status 0) and that every
#     request had the same privacy mode;
#   - the server's /metrics and log: one coalesced request for b.example.test, one 421
#     sni-vhost-differs, one TLS handshake for b.example.test (the one after the 421), one
#     for c.example.test at least, and the 421's WARN line.
#
# Chromium pools an HTTP/2 session for another host only when (docs/client.md, "A real
# browser"):
#   - the session's certificate verified without an error: the CA is trusted through an NSS
#     database in a throwaway $HOME. --ignore-certificate-errors leaves the error in the
#     certificate status (cert_status 4, authority invalid) and turns pooling off;
#   - both requests have the same privacy mode. With third-party cookies blocked, as in a
#     fresh headless profile of Chromium 156, a cross-site subresource gets privacy mode
#     "enabled partitioned state allowed" while the page's own host has "disabled", so
#     their sessions are never shared. The test therefore coalesces same-site names
#     (*.example.test); www.other.test shows the cross-site case.
#
# Installs chromium, libnss3-tools, openssl and python3 with apt-get when missing
# (chromium without its recommended packages: headless needs none of them).
# Takes 2 to 6 s once they are installed and target/release/misdirect is built (CI runs it
# right after scripts/interop.sh, which builds it); installing chromium with apt-get on
# Debian 12 took 41 s more, recommended packages included.
# Exits non-zero on the first failed check; always stops the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# A command that fails outside a check still says where.
trap 'printf "\n*** browser-coalescing FAILED at line %s: %s ***\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

chromium=${CHROMIUM:-chromium}
need_apt=()
command -v "$chromium" >/dev/null 2>&1 || need_apt+=(chromium)
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "browser-coalescing: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
"$chromium" --version

cargo build --release --locked -p misdirect-server
bin=$PWD/target/release/misdirect

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
    printf '\n*** browser-coalescing FAILED: %s ***\n' "$*" >&2
    echo "--- server log (last 20 lines) ---" >&2
    tail -n 20 "$work/server.log" >&2 || true
    echo "--- chromium stderr (last 20 lines) ---" >&2
    grep -v -e dbus -e "unexpected operator" "$work/chromium.err" | tail -n 20 >&2 || true
    exit 1
}
checks=0
ok() {
    checks=$((checks + 1))
    printf 'ok   %s\n' "$*"
}

# The CA and the two server certificates.
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj "/CN=misdirect browser test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>>openssl.log || { cat openssl.log >&2; fail "openssl could not make the CA"; }
leaf() { # file name, subjectAltName
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>>openssl.log ||
        { cat openssl.log >&2; fail "openssl could not make a key for $1"; }
    printf '%s\n' "subjectAltName=$2" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem" 2>>openssl.log ||
        { cat openssl.log >&2; fail "openssl could not sign the certificate for $1"; }
}
leaf shared "DNS:a.example.test,DNS:b.example.test,DNS:www.other.test"
leaf c "DNS:c.example.test"

# The sites. Each probe.js records that it ran; the page loads them one after another, so
# each connection exists before the next request looks for one to reuse.
mkdir -p site/a site/b site/c site/other
for dir in a b c other; do
    echo 'probeRan(document.currentScript.src);' >"site/$dir/probe.js"
done
cat >site/a/index.html <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>coalescing</title></head>
<body><pre id="results"></pre>
<script>
const secure = location.port;
const strict = new URLSearchParams(location.search).get("strict");
const steps = [
  ["b-secure", "https://b.example.test:" + secure + "/probe.js"],
  ["c-secure", "https://c.example.test:" + secure + "/probe.js"],
  ["a-strict", "https://a.example.test:" + strict + "/probe.js"],
  ["b-strict", "https://b.example.test:" + strict + "/probe.js"],
  ["other-secure", "https://www.other.test:" + secure + "/probe.js"],
];
const out = document.getElementById("results");
const ran = new Set();
window.probeRan = (src) => ran.add(src);
function next(i) {
  if (i === steps.length) { out.textContent += "DONE\n"; return; }
  const [label, url] = steps[i];
  const script = document.createElement("script");
  script.src = url;
  script.onload = () => {
    out.textContent += label + " " + (ran.has(url) ? "ran" : "loaded-but-did-not-run") + "\n";
    next(i + 1);
  };
  script.onerror = () => { out.textContent += label + " failed\n"; next(i + 1); };
  document.body.appendChild(script);
}
next(0);
</script></body></html>
HTML

cat >misdirect.toml <<'TOML'
[[listener]]
addr = "127.0.0.1:0"
policy = "secure"

[[listener]]
addr = "127.0.0.1:0"
policy = "strict"

[admin]
addr = "127.0.0.1:0"

[[vhost]]
name = "a.example.test"
cert = "shared.pem"
key = "shared.key"
respond = { dir = "site/a" }

[[vhost]]
name = "b.example.test"
cert = "shared.pem"
key = "shared.key"
respond = { dir = "site/b" }

[[vhost]]
name = "www.other.test"
cert = "shared.pem"
key = "shared.key"
respond = { dir = "site/other" }

[[vhost]]
name = "c.example.test"
cert = "c.pem"
key = "c.key"
respond = { dir = "site/c" }
TOML

RUST_LOG=info "$bin" serve --config misdirect.toml --log-format json >server.out 2>server.log &
server_pid=$!
listening() { # policy → the port its listener is bound to (empty until it is logged)
    { grep '"message":"listening"' server.log | grep "\"policy\":\"$1\"" |
        grep -o '"public_port":[0-9]*' | head -n 1 | cut -d: -f2; } 2>/dev/null || true
}
secure="" strict="" admin=""
for _ in $(seq 100); do
    secure=$(listening secure) strict=$(listening strict)
    admin=$({ grep '"message":"admin listening"' server.log | grep -o '"addr":"[^"]*"' |
        cut -d'"' -f4; } 2>/dev/null || true)
    [ -n "$secure" ] && [ -n "$strict" ] && [ -n "$admin" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
done
if [ -z "$secure" ] || [ -z "$strict" ] || [ -z "$admin" ]; then
    fail "the server did not report its listeners"
fi
echo "secure listener 127.0.0.1:$secure, strict listener 127.0.0.1:$strict, admin $admin"

# Chromium trusts the CA through an NSS database in a throwaway home directory.
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache
mkdir -p "$HOME/.pki/nssdb"
certutil -d "sql:$HOME/.pki/nssdb" -N --empty-password
certutil -d "sql:$HOME/.pki/nssdb" -A -t "C,," -n misdirect-browser-test -i ca.pem

rules="MAP a.example.test 127.0.0.1, MAP b.example.test 127.0.0.1"
rules+=", MAP c.example.test 127.0.0.1, MAP www.other.test 127.0.0.1"
started=$SECONDS
timeout -k 5 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --host-resolver-rules="$rules" \
    --log-net-log="$work/netlog.json" --net-log-capture-mode=Everything \
    --dump-dom "https://a.example.test:$secure/?strict=$strict" >dom.html 2>chromium.err ||
    fail "chromium exited with status $?"
echo "chromium ran for $((SECONDS - started)) s"

# 1. The page: every script loaded and ran.
results=$(sed -n '/<pre id="results">/,/<\/pre>/p' dom.html | sed 's/<[^>]*>//g')
printf '%s\n' "$results" | sed 's/^/     page: /'
for label in b-secure c-secure a-strict b-strict other-secure; do
    printf '%s\n' "$results" | grep -qx "$label ran" || fail "the page did not load $label"
done
printf '%s\n' "$results" | grep -qx DONE || fail "the page did not finish"
ok "the page loaded and ran all 5 scripts"

# 2. Chromium's net log: which session carried which request.
python3 - "$work/netlog.json" "$secure" "$strict" <<'PY' || fail "the net log does not show the expected connections"
import json
import sys

path, secure, strict = sys.argv[1], sys.argv[2], sys.argv[3]
log = json.load(open(path))
names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
BEGIN = log["constants"]["logEventPhase"]["PHASE_BEGIN"]
END = log["constants"]["logEventPhase"]["PHASE_END"]

sessions = {}  # net log source id -> "host:port" the session was made for
streams = {}  # (source id, stream id) -> [authority, status]
restarts = []  # authorities of requests restarted after a 421
privacy = set()  # privacy modes of our requests
cert_status = []  # certificate status of every verification
requests = {}  # URL_REQUEST source id -> :authority it sent
for event in log["events"]:
    kind = names[event["type"]]
    source = event["source"]["id"]
    params = event.get("params") or {}
    if kind == "HTTP2_SESSION" and event["phase"] == BEGIN:
        sessions[source] = params["host"]
    elif kind in ("HTTP2_SESSION_SEND_HEADERS", "HTTP2_SESSION_RECV_HEADERS"):
        fields = dict(h.split(": ", 1) for h in params["headers"] if h.startswith(":"))
        entry = streams.setdefault((source, params["stream_id"]), [None, None])
        if ":authority" in fields:
            entry[0] = fields[":authority"]
        if ":status" in fields:
            entry[1] = fields[":status"]
    elif kind == "HTTP_TRANSACTION_HTTP2_SEND_REQUEST_HEADERS":
        for header in params["headers"]:
            if header.startswith(":authority: "):
                requests[source] = header.split(": ", 1)[1]
    elif kind == "HTTP_TRANSACTION_RESTART_MISDIRECTED_REQUEST":
        restarts.append(requests.get(source))
    elif kind == "HTTP_STREAM_JOB_CONTROLLER" and event["phase"] == BEGIN:
        if ".test:" in params["url"]:
            privacy.add((params["url"], params["privacy_mode"]))
    elif kind == "CERT_VERIFIER_JOB" and event["phase"] == END:
        cert_status.append(params.get("cert_status"))

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def carried(authority):
    """(session host, status) for every stream that carried a request for authority."""
    return [(sessions.get(source), status) for (source, _), (auth, status) in streams.items()
            if auth == authority]


a1, b1, c1 = (f"{h}.example.test:{secure}" for h in "abc")
a2, b2 = f"a.example.test:{strict}", f"b.example.test:{strict}"
other = f"www.other.test:{secure}"
print("     sessions: " + ", ".join(sorted(sessions.values())))

check(cert_status and all(s == 0 for s in cert_status),
      f"every certificate verified without an error (cert_status {sorted(set(cert_status))})")
modes = {mode for url, mode in privacy if "www.other.test" not in url}
check(modes == {"disabled"}, f"every same-site request had privacy mode disabled ({sorted(modes)})")
check(carried(b1) == [(a1, "200")],
      f"coalesced: {b1} went on the session made for {a1} and got 200 ({carried(b1)})")
check(b1 not in sessions.values(), f"no session was made for {b1}")
check(carried(c1) == [(c1, "200")], f"own connection: {c1} went on a session of its own ({carried(c1)})")
check(sorted(carried(b2)) == sorted([(a2, "421"), (b2, "200")]),
      f"421: {b2} went on the session made for {a2}, got 421, then 200 on a session "
      f"made for {b2} ({carried(b2)})")
check(restarts == [b2], f"Chromium restarted exactly that request as misdirected ({restarts})")

other_carried = carried(other)
other_modes = sorted({mode for url, mode in privacy if "www.other.test" in url})
if other_carried == [(a1, "200")]:
    print(f"note cross-site {other} was coalesced onto {a1} (privacy mode {other_modes})")
else:
    print(f"note cross-site {other} was not coalesced: {other_carried}, privacy mode {other_modes}"
          f" (the page's own requests: disabled)")
sys.exit(1 if failures else 0)
PY
checks=$((checks + 7))

# 3. The server's side: /metrics and the 421 log line.
metrics=$(curl -sS "http://$admin/metrics") || fail "GET /metrics failed"
metric() { # series with labels → its value (0 when absent)
    printf '%s\n' "$metrics" | grep -F "$1 " | awk '{print $2}' | head -n 1 | grep . || echo 0
}
expect_metric() { # series, comparison (exactly/at-least), value, what it shows
    local value holds
    value=$(metric "$1")
    case "$2" in
    exactly) holds=$((value == $3)) ;;
    at-least) holds=$((value >= $3)) ;;
    esac
    [ "$holds" = 1 ] || fail "$4: $1 is $value"
    ok "$4 ($1 $value)"
}
expect_metric 'misdirect_coalesced_requests_total{vhost="b.example.test"}' exactly 1 \
    "the server served one coalesced request for b.example.test"
expect_metric 'misdirect_refusals_total{status="421",reason="sni-vhost-differs"}' exactly 1 \
    "the strict listener refused one coalesced request"
expect_metric 'misdirect_tls_handshakes_total{vhost="b.example.test"}' exactly 1 \
    "b.example.test had one connection of its own: the retry after the 421"
expect_metric 'misdirect_tls_handshakes_total{vhost="c.example.test"}' at-least 1 \
    "c.example.test had a connection of its own"
expect_metric 'misdirect_requests_total{vhost="b.example.test",status="200"}' exactly 2 \
    "b.example.test served both of its requests"
expect_metric 'misdirect_requests_total{vhost="c.example.test",status="200"}' exactly 1 \
    "c.example.test served its request"
grep '"reason":"sni-vhost-differs"' server.log | grep '"sni":"a.example.test"' |
    grep -q "\"authority\":\"b.example.test:$strict\"" || fail "no 421 log line for b.example.test"
ok "the 421 is logged with sni a.example.test and authority b.example.test:$strict"

printf '\nbrowser-coalescing: all %s checks passed in %s s\n' "$checks" "$SECONDS"
