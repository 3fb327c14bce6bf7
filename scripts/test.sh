#!/usr/bin/env bash
# Build schemagate, run its unit tests, then the end-to-end tests against a
# throwaway PostgreSQL cluster. Installs missing Debian packages and a Python
# virtualenv (.venv) on first use.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh

install_debian_packages
setup_venv

cargo build --locked
cargo test --locked

export SCHEMAGATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/schemagate"
.venv/bin/python -m pytest tests/e2e "$@"
