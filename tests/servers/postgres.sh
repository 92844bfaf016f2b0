#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests: initdb in a temp dir, listen on 127.0.0.1 on a
# free port, stop and delete it after. PostgreSQL refuses to run as root, so as root every
# server command runs as the `postgres` system user (runuser); as any other user it runs as that
# user. No mock: tests talk to a real server.
#
#   tests/servers/postgres.sh start [PID]      -> prints "DSN<TAB>DIR" (DIR is the handle); with PID,
#                                                 a watchdog stops the cluster when PID exits
#                                                 (a test binary that crashes leaks no server)
#   tests/servers/postgres.sh restart DIR      -> fast restart on the same port (tests of reconnects)
#   tests/servers/postgres.sh pause DIR        -> stops the server, keeps the cluster (outage tests)
#   tests/servers/postgres.sh resume DIR       -> starts it again on the same port
#   tests/servers/postgres.sh stop DIR         -> stops the server, deletes DIR
#   tests/servers/postgres.sh run CMD ARGS...  -> starts, runs CMD with KEYCEL_TEST_PG_DSN set, stops
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_start() {
  local dir port
  if [ ! -x "$PGBIN/initdb" ]; then
    echo "postgres.sh: $PGBIN/initdb missing (apt-get install postgresql-15)" >&2
    exit 2
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/keycel-pg.XXXXXX")
  # The server user must own the cluster and reach the socket dir.
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  as_pg "$PGBIN/initdb" -D "$dir/data" -U keycel -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; exit 1; }
  local tries=0
  while :; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    if as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 3 ]; then cat "$dir/server.log" >&2; exit 1; fi
  done
  if [ -n "${1:-}" ]; then
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 0.5; done; exec bash "$0" stop "$2"' \
      "$0" "$1" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  printf 'postgresql://keycel@127.0.0.1:%s/postgres\t%s\n' "$port" "$dir"
}

pg_stop() {
  local dir=$1
  case "$dir" in */keycel-pg.*) ;; *) echo "postgres.sh: not a test cluster: $dir" >&2; exit 2 ;; esac
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

pg_restart() {
  local dir=$1 port
  port=$(cat "$dir/port")
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -m fast \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    restart >/dev/null
}

pg_pause() {
  as_pg "$PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null
}

pg_resume() {
  local dir=$1 port
  port=$(cat "$dir/port")
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) pg_start "${1:-}" ;;
  stop) pg_stop "$1" ;;
  restart) pg_restart "$1" ;;
  pause) pg_pause "$1" ;;
  resume) pg_resume "$1" ;;
  run)
    line=$(pg_start)
    dsn=${line%%$'\t'*}
    dir=${line#*$'\t'}
    trap 'pg_stop "$dir"' EXIT
    KEYCEL_TEST_PG_DSN=$dsn "$@"
    ;;
  *) echo "usage: $0 start | stop DIR | restart DIR | run CMD..." >&2; exit 2 ;;
esac
