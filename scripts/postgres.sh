#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and CI: Debian's server binaries, one data folder,
# 127.0.0.1 only, trust auth on loopback (only this host can reach it: for tests, not data).
#
#   scripts/postgres.sh install      install Debian's server when initdb is missing (needs root)
#   scripts/postgres.sh start DIR    initdb DIR if needed, start on a free port, print the URL
#   scripts/postgres.sh stop DIR     stop the server of DIR (no-op when it is not running)
#
# The URL printed by `start` is postgresql://postgres@127.0.0.1:PORT/postgres; DIR/url holds it.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

# runuser and useradd live in /sbin and /usr/sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

# Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
bindir() {
    local initdb
    initdb=$(command -v initdb 2>/dev/null || true)
    if [[ -z $initdb ]]; then
        initdb=$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    [[ -n $initdb ]] || return 1
    dirname "$(readlink -f "$initdb")"
}

install() {
    if bindir >/dev/null; then
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "initdb not found; install PostgreSQL (apt-get install postgresql) as root"
    # Only the binaries: Debian would otherwise create and start a cluster on port 5432.
    mkdir -p /etc/postgresql-common
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
    }
    bindir >/dev/null || die "apt-get installed postgresql but initdb is still not found"
}

# PostgreSQL refuses to run as root: as root, run its tools as the postgres user.
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=${1:?usage: postgres.sh start DIR}
    local bin
    bin=$(bindir) || die "initdb not found: install PostgreSQL (apt-get install postgresql, or run scripts/postgres.sh install as root)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) == 0 ]]; then
        id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
        chown postgres: "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot reach $dir: use a folder whose parents it can enter (e.g. mktemp -d under /tmp)"
    fi
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            die "initdb failed in $dir/data"
        }
    fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        cat "$dir/url"
        return 0
    fi
    local port
    port=$(free_port)
    # Loopback TCP only; the unix socket lives in DIR, not /var/run/postgresql (absent on CI).
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null || {
        cat "$dir/server.log" >&2
        die "the server in $dir/data did not start"
    }
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url.tmp"
    mv "$dir/url.tmp" "$dir/url"
    cat "$dir/url"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    local bin
    bin=$(bindir) || return 0
    [[ -f $dir/data/PG_VERSION ]] || return 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case ${1:-} in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) die "usage: postgres.sh install | start DIR | stop DIR" ;;
esac
