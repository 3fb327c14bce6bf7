# Sourced by bench/run.sh and bench/profile.sh. Makes a work directory and
# ports, and defines the steps that start a throwaway cluster with pgbench
# tables, PgBouncer in session mode in front of it, and a schemagate
# configuration. Everything listens on 127.0.0.1 only; the work directory
# and every server started here go away when the calling script exits.

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/schemagate-bench-XXXXXX)
chmod 0755 "$work"

run_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
    # The background job is a shell that runs runuser, so killing it would
    # leave PgBouncer running. PgBouncer is found by its configuration path.
    pkill -f "$work/pgbouncer.ini" 2>/dev/null || true
    run_as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port); bouncer_port=$(free_port); proxy_port=$(free_port); admin_port=$(free_port)

wait_port() {
    for _ in $(seq 1 600); do
        if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "error: nothing listens on port $1" >&2
    return 1
}

# Starts PostgreSQL on $pg_port with pgbench tables at scale 10.
start_cluster() {
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$work"; fi
    run_as_postgres "$pg_bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work'
max_connections = 1100
CONF
    run_as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w start >/dev/null
    "$pg_bin/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1
}

# Writes PgBouncer's configuration for session mode on $bouncer_port.
write_pgbouncer_config() {
    cat >"$work/pgbouncer.ini" <<CONF
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
    echo '"postgres" ""' >"$work/userlist.txt"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$work"; fi
}

# Writes schemagate's configuration for $proxy_port to $work/rules.yaml.
write_proxy_config() {
    cat >"$work/rules.yaml" <<CONF
listen: {address: "127.0.0.1:$proxy_port"}
upstream: {address: "127.0.0.1:$pg_port"}
admin: {address: "127.0.0.1:$admin_port"}
limits: {max_connections: 2000}
CONF
}
