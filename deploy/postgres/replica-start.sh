#!/bin/sh
# The streaming replica: on first start, copy the primary (pg_basebackup -R writes the standby settings), then run
# as a hot standby. Reports and exports read here (DATABASE_REPLICA_URL); nothing writes.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup --host=postgres --username=replicator \
        --pgdata="$PGDATA" --wal-method=stream --write-recovery-conf --checkpoint=fast; do
        echo "waiting for the primary"; rm -rf "${PGDATA:?}"/*; sleep 2
    done
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c max_standby_streaming_delay=30s -c hot_standby_feedback=on
