# Functions that install what schemagate's scripts need on Debian: the
# PostgreSQL server, clang and libclang (pg_query builds the Postgres parser
# from C), and a Python virtualenv (.venv) with tests/requirements.txt.
# Source this file from the repository root.

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# Print the Debian packages among the requirements that are not installed.
missing_debian_packages() {
    local pkg
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || echo postgresql
    ls /usr/share/postgresql/*/extension/pgcrypto.control >/dev/null 2>&1 || echo postgresql-contrib
    command -v clang >/dev/null 2>&1 || echo clang
    command -v openssl >/dev/null 2>&1 || echo openssl
    for pkg in libclang-dev python3-venv; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || echo "$pkg"
    done
}

install_debian_packages() {
    local missing
    missing="$(missing_debian_packages | sort -u | tr '\n' ' ')"
    if [ -z "${missing// /}" ]; then
        return
    fi
    echo "installing Debian packages: $missing"
    as_root apt-get update
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
}

# Create .venv and install tests/requirements.txt unless the installed set matches.
setup_venv() {
    local stamp requirements_hash
    stamp=".venv/.requirements.sha256"
    requirements_hash="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$requirements_hash" ]; then
        return
    fi
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r tests/requirements.txt
    echo "$requirements_hash" > "$stamp"
}
