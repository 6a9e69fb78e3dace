#!/bin/sh
# A throwaway PostgreSQL for tests and benchmarks: tools/pg.sh up DIR PORT | down DIR
# Prints the SQLAlchemy URL on `up`. Runs the server as `postgres` when we are root
# (initdb refuses root), with fsync off: the data is disposable.
set -eu
action=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $action in
up)
  port=$3
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir" -A trust -U hotline -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300" \
    start >/dev/null
  echo "postgresql+psycopg://hotline@127.0.0.1:$port/postgres"
  ;;
down)
  [ -f "$dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  ;;
esac
