#!/usr/bin/env bash
# Runs `cargo deny check` offline against the RustSec advisory database
# snapshot shipped beside the repository (../shared/advisory-db.tar.gz), or
# the tarball named by ADVISORY_DB_TARBALL. Installs cargo-deny when missing.
set -euo pipefail

cd "$(dirname "$0")/.."
tarball=${ADVISORY_DB_TARBALL:-../shared/advisory-db.tar.gz}
if [ ! -f "$tarball" ]; then
    echo "error: advisory database snapshot not found at $tarball; set ADVISORY_DB_TARBALL" >&2
    exit 1
fi

if ! cargo deny --version >/dev/null 2>&1; then
    echo "supply-chain.sh: installing cargo-deny (compiles from crates.io, a few minutes)"
    cargo install --locked cargo-deny
fi

# cargo-deny looks for a git checkout named after the database URL in db-path.
db_dir=.cargo-deny/advisory-dbs/advisory-db-3157b0e258782691
rm -rf .cargo-deny
mkdir -p "$db_dir"
tar xzf "$tarball" -C "$db_dir" --strip-components=1
git -C "$db_dir" init -q
git -C "$db_dir" add -A
snapshot_date=$(sed -n 's/.*(commit [0-9a-f]*, \([0-9-]*\)).*/\1/p' "$(dirname "$tarball")/advisory-db.README" 2>/dev/null || true)
GIT_AUTHOR_DATE="${snapshot_date:-now}T00:00:00Z" GIT_COMMITTER_DATE="${snapshot_date:-now}T00:00:00Z" \
    git -C "$db_dir" -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "RustSec advisory database snapshot"

cargo deny --offline check
