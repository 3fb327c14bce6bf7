#!/usr/bin/env bash
# Counts the instructions PgBouncer and schemagate each execute per pgbench
# transaction, under valgrind's callgrind, and lists the functions that cost
# the most. Instruction counts repeat from run to run whatever else the
# machine does, unlike timings. Only user-space work is counted: the system
# calls themselves, which dominate both proxies' CPU time, are not.
#
# Usage: bench/profile.sh [MODE] [CLIENTS] [TRANSACTIONS_PER_CLIENT]
#   MODE is pgbench's -M: simple (default), extended or prepared.
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${1:-simple}
clients=${2:-8}
transactions=${3:-2000}
target_dir=${CARGO_TARGET_DIR:-$(pwd)/target}

source bench/setup.sh

if ! command -v valgrind >/dev/null; then
    echo "error: valgrind is missing; install the Debian package valgrind" >&2
    exit 1
fi

echo "building schemagate (release)"
cargo build --release --locked --bin schemagate >/dev/null
start_cluster
write_pgbouncer_config
write_proxy_config

pgbench_run() {
    "$pg_bin/pgbench" -S -M "$mode" -c "$clients" -j 2 -t "$1" -h 127.0.0.1 -p "$2" -U postgres postgres >/dev/null 2>&1
}

# Profiles one proxy: warms it up, zeroes the counters, runs the measured
# transactions, then stops the proxy so that callgrind writes its file.
profile() {
    local label=$1 port=$2 user=$3
    shift 3
    local output="$work/$label.callgrind"
    run_as "$user" valgrind --tool=callgrind --callgrind-out-file="$output" "$@" >"$work/$label.valgrind.log" 2>&1 &
    wait_port "$port" || { cat "$work/$label.valgrind.log" >&2; exit 1; }
    pgbench_run 100 "$port"

    local pid
    pid=$(pgrep -f -- "--callgrind-out-file=$output" | tail -n 1)
    run_as "$user" callgrind_control -z "$pid" >/dev/null 2>&1
    pgbench_run "$transactions" "$port"
    kill -INT "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done

    echo "== $label, pgbench -S -M $mode, $clients clients"
    python3 bench/callgrind_self.py "$output" $((clients * transactions))
}

run_as() {
    local user=$1
    shift
    if [ "$user" = postgres ]; then run_as_postgres "$@"; else "$@"; fi
}

profile pgbouncer "$bouncer_port" postgres /usr/sbin/pgbouncer "$work/pgbouncer.ini"
profile schemagate "$proxy_port" "$(id -un)" "$target_dir/release/schemagate" serve --config "$work/rules.yaml" --worker-threads 1
