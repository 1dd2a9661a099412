#!/usr/bin/env bash
# HTTP/2 conformance of the plain (h2c) listener: runs the httpwg suite (a Rust port of
# h2spec, RFC 9113) against `misdirect serve` with a `tls = false` listener, and fails when
# fewer than MIN_PASS (default 84) of its 107 tests pass. The suite opens every test's
# connection at once with short frame timeouts, so a few tests pass or fail from run to
# run: docs/reliability.md ("HTTP/2 conformance") lists each failure and why.
# Installs httpwg-cli with cargo when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
min_pass="${MIN_PASS:-84}"

if ! command -v httpwg >/dev/null 2>&1; then
    echo "conformance: installing httpwg-cli"
    cargo install --locked httpwg-cli
fi
cargo build --release --locked -p misdirect-server
bin="$PWD/target/release/misdirect"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/h2c.toml" <<TOML
[[listener]]
addr = "127.0.0.1:$port"
tls = false
# The suite's requests name localhost without a port.
public_ports = [80, $port]
unknown_host = "default"

[[vhost]]
name = "localhost"
self_signed = true
TOML

RUST_LOG=error timeout 300 httpwg -a "127.0.0.1:$port" -- "$bin" serve --config "$work/h2c.toml" \
    >"$work/httpwg.log" 2>&1 || true
result=$(sed 's/\x1b\[[0-9;]*m//g' "$work/httpwg.log" | grep -oE 'Passed [0-9]+/[0-9]+' | tail -n 1)
sed 's/\x1b\[[0-9;]*m//g' "$work/httpwg.log" | grep -E '^❌ Test failed' || true
if [ -z "$result" ]; then
    tail -n 40 "$work/httpwg.log" >&2
    echo "*** conformance: the suite did not report a result ***" >&2
    exit 1
fi
passed=${result#Passed }
passed=${passed%%/*}
echo "conformance: $result (at least $min_pass required)"
if [ "$passed" -lt "$min_pass" ]; then
    echo "*** conformance: $passed passed, fewer than $min_pass ***" >&2
    exit 1
fi
