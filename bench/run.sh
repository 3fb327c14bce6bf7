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

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/schemagate-bench-XXXXXX)
chmod 0755 "$work"
run_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "${bouncer_pid:-}" ] && kill "$bouncer_pid" 2>/dev/null || true
    run_as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port); bouncer_port=$(free_port); proxy_port=$(free_port); admin_port=$(free_port)

echo "building schemagate (release)"
cargo build --release --locked --bin schemagate >/dev/null

if [ "$(id -u)" -eq 0 ]; then chown postgres "$work"; fi
run_as_postgres "$pg_bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work'
max_connections = 1100
CONF
run_as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w start >/dev/null
"$pg_bin/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

cat > "$work/pgbouncer.ini" <<CONF
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 100
unix_socket_dir =
logfile = $work/pgbouncer.log
CONF
echo '"postgres" ""' > "$work/userlist.txt"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$work"; fi
run_as_postgres /usr/sbin/pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
bouncer_pid=$!

cat > "$work/rules.yaml" <<CONF
listen: {address: "127.0.0.1:$proxy_port"}
upstream: {address: "127.0.0.1:$pg_port"}
admin: {address: "127.0.0.1:$admin_port"}
limits: {max_connections: 2000}
CONF
"$target_dir/release/schemagate" serve --config "$work/rules.yaml" >"$work/proxy.log" 2>&1 &
proxy_pid=$!

wait_port() {
    for _ in $(seq 1 100); do
        if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "error: nothing listens on port $1" >&2
    exit 1
}
wait_port "$bouncer_port"; wait_port "$proxy_port"

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
