#!/usr/bin/env bash
# Show schemagate guarding an Alembic migration on this machine: a throwaway
# PostgreSQL cluster, schemagate in front of it, a migration denied without a
# window and passing inside one, and the application role kept away from
# alembic_version. Installs missing Debian packages and .venv on first use.
# Exits non-zero when any step's outcome is not the expected one.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh

DEMO_PID=""

# The Python driver stops the proxy and the cluster itself; this trap makes
# sure it gets the chance when the script is interrupted.
stop_demo() {
    if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
        kill -TERM "$DEMO_PID" 2>/dev/null || true
        wait "$DEMO_PID" 2>/dev/null || true
    fi
}
trap stop_demo EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_debian_packages
setup_venv

echo "building schemagate (cargo build)"
cargo build --locked --quiet
export SCHEMAGATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/schemagate"

.venv/bin/python scripts/demo.py &
DEMO_PID=$!
wait "$DEMO_PID"
