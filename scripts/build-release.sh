#!/usr/bin/env bash
# Builds the release binary the way the Dockerfile does, so CI proves the
# container's build path on machines that cannot pull base images.
# Usage: scripts/build-release.sh [OUTPUT_DIR]
set -euo pipefail

cd "$(dirname "$0")/.."
out_dir=${1:-dist}

# pg_query compiles libpg_query and generates bindings with bindgen, which needs libclang.
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends libclang-dev clang >/dev/null
    else
        echo "error: libclang is missing; install libclang-dev and clang" >&2
        exit 1
    fi
fi

cargo build --release --locked --bin schemagate
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$out_dir"
install -m 0755 "$target_dir/release/schemagate" "$out_dir/schemagate"
"$out_dir/schemagate" --version
