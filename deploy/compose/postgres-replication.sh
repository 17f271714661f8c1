#!/bin/sh
# Run once, when the primary's data directory is made: standbys may stream from it, signing
# in as the application's user.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
