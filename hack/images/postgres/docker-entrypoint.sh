#!/bin/bash
# First start: initdb into $PGDATA, set the superuser's password, create $POSTGRES_DB.
# Every start: exec the server so it is PID 1 and receives the stop signal itself.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

if [ "${1:-postgres}" != postgres ]; then
    exec "$@"
fi
shift || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    # The mounted volume may be root-owned (mode 0777): initdb creates $PGDATA itself, with
    # our uid and mode 0700, or fixes the mode of an empty one we own.
    # The password goes through a pipe, never onto disk or into the process list.
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA"
    # initdb only admits 127.0.0.1 and ::1 over TCP; clients come from other pods.
    printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

    # A temporary server reachable only through the unix socket creates the database.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$POSTGRES_USER" --dbname=postgres \
            --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -p 5432 "$@"
