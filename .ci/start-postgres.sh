#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store tests and print, as the LAST line of
# stdout, the export that points the tests at it:
#
#     eval "$(bash .ci/start-postgres.sh)"
#
# Everything else goes to stderr. Installs PostgreSQL with apt-get when no server
# binaries are found. The cluster lives in $PAYGATE_PG_DIR (default: paygate-pg-<uid>
# in the temp directory), listens on loopback only, trusts local connections and runs
# with fsync off: it is for tests, never for data. Running the script again reuses the
# cluster when it is still up, and replaces it otherwise.
set -euo pipefail

log() { printf 'start-postgres: %s\n' "$*" >&2; }

find_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        printf '%s\n' "$dir"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    return 1
}

BINDIR=$(find_bindir || true)
if [ -z "$BINDIR" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL is not installed and this is not root: install it first"
        exit 1
    fi
    log "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    BINDIR=$(find_bindir)
fi
log "using $BINDIR"

# initdb refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    fi
    RUNAS=(runuser -u postgres --)
    DBUSER=postgres
else
    RUNAS=()
    DBUSER=$(id -un)
fi
as_pg() { "${RUNAS[@]}" "$@"; }

TMPBASE=$(dirname "$(mktemp -u)")
PGDIR=${PAYGATE_PG_DIR:-$TMPBASE/paygate-pg-$(id -u)}
DATA=$PGDIR/data
DBNAME=paygate_test

url_for() { printf 'postgresql://%s@127.0.0.1:%s/%s' "$DBUSER" "$1" "$DBNAME"; }

# Reuse a cluster from an earlier run when it still answers.
if [ -f "$PGDIR/port" ] && [ -f "$DATA/postmaster.pid" ]; then
    PORT=$(cat "$PGDIR/port")
    if as_pg "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2; then
        log "reusing the running cluster on port $PORT"
        printf 'export PAYGATE_TEST_POSTGRES_URL=%s\n' "$(url_for "$PORT")"
        exit 0
    fi
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate stop >&2 2>&1 || true
fi

# Only ever delete what this script created.
if [ -d "$PGDIR" ] && [ -n "$(ls -A "$PGDIR")" ] && [ ! -f "$DATA/PG_VERSION" ]; then
    log "$PGDIR exists and is not a cluster made by this script; refusing to replace it"
    exit 1
fi
rm -rf "$PGDIR"
mkdir -p "$PGDIR"
chmod 755 "$PGDIR"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PGDIR"
fi

log "creating a cluster in $DATA"
as_pg "$BINDIR/initdb" -D "$DATA" -U "$DBUSER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-sync >&2 ||
    as_pg "$BINDIR/initdb" -D "$DATA" -U "$DBUSER" --auth=trust --encoding=UTF8 --no-sync >&2

cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGDIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
EOF

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

started=
for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    if as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$PGDIR/server.log" -w -t 60 \
        -o "-p $PORT" start >&2; then
        started=1
        break
    fi
    log "port $PORT did not work, trying another"
done
if [ -z "$started" ]; then
    log "PostgreSQL did not start; its log follows"
    cat "$PGDIR/server.log" >&2 || true
    exit 1
fi
printf '%s\n' "$PORT" >"$PGDIR/port"

as_pg "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" "$DBNAME" >&2
log "PostgreSQL is up on 127.0.0.1:$PORT (database $DBNAME)"
printf 'export PAYGATE_TEST_POSTGRES_URL=%s\n' "$(url_for "$PORT")"
