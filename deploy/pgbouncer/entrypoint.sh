#!/bin/sh
# The logins pgbouncer accepts, from the environment (never baked into the image).
set -e
umask 077
printf '"%s" "%s"\n"%s" "%s"\n' "$APP_USER" "$APP_PASSWORD" "$OWNER_USER" "$OWNER_PASSWORD" \
    > /tmp/pgbouncer-userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
