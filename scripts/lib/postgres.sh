# A throwaway PostgreSQL for the test suites, sourced by scripts/ that need one:
#
#   . scripts/lib/postgres.sh
#   postgres_start          # sets POSTGRES_URL (postgres://gateway@127.0.0.1:PORT/gateway)
#   ...                     # POSTGRES_DIR holds the cluster, its socket and its log
#   postgres_stop           # stops the server and removes POSTGRES_DIR (idempotent)
#
# and, for a test of an outage, given POSTGRES_DIR and POSTGRES_PORT:
#
#   postgres_pause          # stops the server, keeping its data
#   postgres_resume         # starts it again, on the same port
#
# Debian's server binaries (scripts/bootstrap installs `postgresql`), a fresh cluster in a
# temporary directory, listening on a free 127.0.0.1 port only; never the distro's own
# cluster or port 5432. The server refuses to run as root, so as root the cluster belongs to
# the `postgres` user the package creates.

postgres_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$bin/initdb" ] || {
        echo "postgres: no server binaries under /usr/lib/postgresql: apt-get install postgresql" >&2
        return 1
    }
    echo "$bin"
}

# Runs a server binary as the cluster's owner.
postgres_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_start() {
    local bin port
    bin=$(postgres_bin) || return 1
    POSTGRES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ngx-gateway-postgres.XXXXXX")
    mkdir "$POSTGRES_DIR/socket"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$POSTGRES_DIR"
    port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport')

    # trust over 127.0.0.1: a test cluster that lives as long as one test run, reachable
    # from this machine only.
    postgres_as_owner "$bin/initdb" --pgdata="$POSTGRES_DIR/data" --username=gateway \
        --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$POSTGRES_DIR/initdb.log" 2>&1 || {
        cat "$POSTGRES_DIR/initdb.log" >&2
        return 1
    }
    POSTGRES_PORT=$port
    postgres_run "$bin" || return 1
    "$bin/psql" --quiet --no-psqlrc --host=127.0.0.1 --port="$port" --username=gateway \
        --dbname=postgres --command='CREATE DATABASE gateway' >/dev/null || return 1
    POSTGRES_URL=postgres://gateway@127.0.0.1:$port/gateway
    export POSTGRES_URL POSTGRES_PORT POSTGRES_DIR
    echo "postgres: $("$bin/postgres" --version | awk "{print \$3}") on 127.0.0.1:$port ($POSTGRES_DIR)"
}

# Starts the server of POSTGRES_DIR on POSTGRES_PORT and waits until it accepts connections.
postgres_run() {
    local bin=$1
    # fsync off: the data is thrown away with the directory; durability buys nothing here.
    postgres_as_owner "$bin/pg_ctl" --pgdata="$POSTGRES_DIR/data" --log="$POSTGRES_DIR/server.log" \
        --wait --silent \
        --options="-c listen_addresses=127.0.0.1 -c port=$POSTGRES_PORT -c unix_socket_directories=$POSTGRES_DIR/socket -c fsync=off -c max_connections=200" \
        start || {
        cat "$POSTGRES_DIR/server.log" >&2
        return 1
    }
}

postgres_pause() {
    local bin
    bin=$(postgres_bin) || return 1
    postgres_as_owner "$bin/pg_ctl" --pgdata="$POSTGRES_DIR/data" --mode=fast --wait --silent stop
}

postgres_resume() {
    local bin
    bin=$(postgres_bin) || return 1
    postgres_run "$bin"
}

postgres_stop() {
    [ -n "${POSTGRES_DIR:-}" ] && [ -d "$POSTGRES_DIR" ] || return 0
    local bin
    bin=$(postgres_bin) || return 1
    if [ -f "$POSTGRES_DIR/data/postmaster.pid" ]; then
        postgres_as_owner "$bin/pg_ctl" --pgdata="$POSTGRES_DIR/data" --mode=fast --wait --silent stop || true
    fi
    rm -rf "$POSTGRES_DIR"
    unset POSTGRES_DIR POSTGRES_URL POSTGRES_PORT
}
