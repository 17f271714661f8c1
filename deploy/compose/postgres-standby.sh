#!/bin/sh
# The standby: on its first start a copy of the primary, then streaming from it. Promoted by
# hand (docker compose exec postgres-standby pg_ctl promote) when the primary is lost; the
# old primary must then be made a standby of it before it runs again (README, "Production").
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
exec postgres -c hot_standby=on
