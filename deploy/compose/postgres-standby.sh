#!/bin/sh
# The standby: on its first start a copy of the primary, then streaming from it, and from then
# on every commit of the primary waits for it (an alarm answered 2xx is on both). Promoted by
# hand when the primary is lost: docker compose exec postgres-standby pg_ctl promote, then
# README, "Production", for the old primary.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_basebackup -h postgres -U alarmbroker -D "$PGDATA" -X stream -R \
            --checkpoint=fast -d "application_name=postgres-standby"; do
        echo "waiting for the primary"
        rm -rf "${PGDATA:?}"/*
        sleep 2
    done
    chmod 700 "$PGDATA"
fi
if [ -f "$PGDATA/standby.signal" ]; then
    # Set on the primary's side, where it takes effect: commits wait from the moment this
    # server connects (seconds from now). Without a primary to tell (it is the one lost), skip.
    psql -h postgres -U alarmbroker -d alarmbroker -c \
        "ALTER SYSTEM SET synchronous_standby_names = 'postgres-standby'" \
        -c "SELECT pg_reload_conf()" || echo "could not ask the primary to wait for this standby"
fi
exec postgres -c hot_standby=on
