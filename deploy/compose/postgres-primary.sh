#!/bin/sh
# The primary. Once postgres-standby was promoted (the ha profile's failover, by hand), this
# server's data is an old copy: started as a primary again it would take writes beside the
# new one, and processes reconnecting could land here. It refuses, until it is rebuilt as the
# new primary's standby (README, "Production"), which leaves standby.signal in its data.
if [ ! -f "$PGDATA/standby.signal" ] &&
    PGPASSWORD="$POSTGRES_PASSWORD" PGCONNECT_TIMEOUT=3 psql -h postgres-standby \
        -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atc "SELECT pg_is_in_recovery()" 2>/dev/null |
    grep -qx f; then
    echo "postgres-standby was promoted: this server must not start as a second primary." >&2
    echo "Rebuild it as the new primary's standby (README, Production)." >&2
    exit 1
fi
exec docker-entrypoint.sh postgres -c wal_level=replica -c max_wal_senders=5
