#!/usr/bin/env bash
# Runs pgbench against PostgreSQL directly, through PgBouncer (session mode)
# and through schemagate, interleaved in one run, and writes the table to
# docs/benchmarks.md. Everything listens on 127.0.0.1 only.
#
# Usage: bench/run.sh [SECONDS_PER_CELL] [REPEATS]
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${1:-10}
repeats=${2:-3}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

source bench/setup.sh

echo "building schemagate (release)"
cargo build --release --locked --bin schemagate >/dev/null
start_cluster
write_pgbouncer_config
run_as_postgres /usr/sbin/pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
write_proxy_config
"$target_dir/release/schemagate" serve --config "$work/rules.yaml" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
wait_port "$bouncer_port"
wait_port "$proxy_port"

# One pgbench run; prints "tps latency_ms".
bench_cell() {
    local port=$1 clients=$2 mode=$3 script=$4 extra=$5
    local out
    out=$("$pg_bin/pgbench" $script -M "$mode" -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$seconds" $extra \
        -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1)
    local tps latency
    tps=$(echo "$out" | awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]; exit}')
    latency=$(echo "$out" | awk -F'= ' '/^latency average/ {split($2, a, " "); print a[1]; exit}')
    echo "${tps:-0} ${latency:-0}"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cells=(
    "select-only 1 simple -S ''"
    "select-only 8 simple -S ''"
    "select-only 32 simple -S ''"
    "select-only 1 extended -S ''"
    "select-only 8 extended -S ''"
    "select-only 32 extended -S ''"
    "select-only 1 prepared -S ''"
    "select-only 8 prepared -S ''"
    "select-only 32 prepared -S ''"
    "tpcb-like 8 simple '' ''"
    "select-only-connect 8 simple -S -C"
)
targets=("direct:$pg_port" "pgbouncer:$bouncer_port" "schemagate:$proxy_port")

results="$work/results.txt"
: >"$results"
for cell in "${cells[@]}"; do
    eval "set -- $cell"
    name=$1 clients=$2 mode=$3 script=$4 extra=$5
    for repeat in $(seq 1 "$repeats"); do
        # Interleave the targets so drift on the machine hits all three alike.
        for target in "${targets[@]}"; do
            label=${target%%:*} port=${target##*:}
            echo "$name $clients $mode $label $(bench_cell "$port" "$clients" "$mode" "$script" "$extra")" >>"$results"
        done
    done
    echo "done: $name c=$clients $mode"
done

rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")
python3 bench/idle_connections.py "$proxy_port" 1000 "$proxy_pid" >"$work/idle.txt"

# Policy micro-benchmarks, after the pgbench runs so they do not compete for the CPU.
echo "running cargo bench --bench policy"
cargo bench --locked --bench policy >"$work/criterion.log" 2>&1 || { cat "$work/criterion.log" >&2; exit 1; }

python3 bench/report.py "$results" "$work/idle.txt" "$seconds" "$repeats" "$rss_kib" "$target_dir/criterion" >docs/benchmarks.md
echo "wrote docs/benchmarks.md"
