#!/usr/bin/env bash
# Compares misdirect builds under h2load on the 200 and 421 paths of the embedded set-up,
# interleaved: for each round, each build is started fresh (default logging, RUST_LOG=info,
# stderr to a file as a service manager would keep it) and loaded on both paths.
#
#   scripts/h2load-compare.sh NAME=PATH/TO/misdirect [NAME=PATH ...]
#
# ROUNDS (default 3) and N (requests per run, default 300000) tune it. Prints one line per
# run: req/s, status codes, and the bytes the server logged. Needs h2load (nghttp2-client).
set -u
rounds=${ROUNDS:-3}
n=${N:-300000}
[ "$#" -gt 0 ] || { echo "usage: $0 NAME=BINARY ..." >&2; exit 2; }
command -v h2load >/dev/null 2>&1 || { echo "h2load not found (apt-get install nghttp2-client)" >&2; exit 2; }
for round in $(seq "$rounds"); do
    for spec in "$@"; do
        name=${spec%%=*}
        bin=${spec#*=}
        dir=$(mktemp -d)
        RUST_LOG=info "$bin" serve --port 0 --out-dir "$dir/files" >"$dir/out" 2>"$dir/err" &
        pid=$!
        for _ in $(seq 100); do
            grep -q "https://127.0.0.1:" "$dir/out" 2>/dev/null && break
            sleep 0.1
        done
        port=$(grep -o 'https://127.0.0.1:[0-9]*' "$dir/out" | head -n 1 | sed 's/.*://')
        for path in 200 421; do
            extra=()
            # secure.localhost needs a client certificate: 421 client-cert-required.
            [ "$path" = 421 ] && extra=(-H ":authority: secure.localhost:$port")
            out=$(h2load -n "$n" -c 50 -m 10 -t 1 --connect-to "127.0.0.1:$port" "${extra[@]}" \
                "https://a.localhost:$port/" 2>&1)
            rps=$(printf '%s' "$out" | grep -o 'finished in [^,]*, [0-9.]* req/s' | awk '{print $(NF-1)}')
            codes=$(printf '%s' "$out" | grep -o 'status codes: .*')
            printf '%s round=%s path=%s req/s=%s %s log_bytes=%s\n' \
                "$name" "$round" "$path" "$rps" "$codes" "$(stat -c %s "$dir/err")"
        done
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null
        rm -rf "$dir"
    done
done
