#!/usr/bin/env bash
# Starts the three servers the distributed mode and the integration tests talk to, on loopback with throwaway data:
#   RabbitMQ (Debian rabbitmq-server), PostgreSQL (Debian postgresql), Azurite blob service (npm azurite).
# Installs what is missing, starts what is not running, waits until each accepts connections, then writes
# deploy/services.env with WINTOK_RABBITMQ, WINTOK_POSTGRES and WINTOK_BLOB_CONNECTION.
#
#   bash deploy/services.sh start | stop | status | clean
#   bash deploy/services.sh restart | stop-one | start-one NAME      NAME: rabbitmq, postgres or azurite
#
# Environment: WINTOK_SERVICES_DIR (data; default /tmp/wintok-services), WINTOK_SERVICES_ENV_FILE (default
# deploy/services.env), WINTOK_{RABBITMQ,POSTGRES,AZURITE}_PORT (pin a port), WINTOK_SERVICES_TIMEOUT (seconds),
# WINTOK_RABBITMQ_CONSUMER_TIMEOUT_MS.
#
# No systemd and no Docker: each server runs as a plain background process whose data, logs and pid file live under
# $WINTOK_SERVICES_DIR (default /tmp/wintok-services). `stop` keeps the data (a restart finds its queues, tables and
# blobs again); `clean` stops everything and deletes that directory.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${WINTOK_SERVICES_DIR:-/tmp/wintok-services}
# Preferred ports: non-default for AMQP and PostgreSQL so a system-wide server on 5672/5432 never collides. When a
# preferred port is held by a process this script did not start, the next free one above it is used; the choice is
# remembered under $ROOT and published in services.env. WINTOK_<NAME>_PORT pins a port (and fails if it is taken).
RABBITMQ_PREFERRED_PORT=5673
POSTGRES_PREFERRED_PORT=5433
AZURITE_PREFERRED_PORT=10000
# Seconds each server may take to accept connections before start fails.
START_TIMEOUT=${WINTOK_SERVICES_TIMEOUT:-120}
# The broker closes a channel whose delivery stays unacked this long (ms). RabbitMQ 3.10 (Debian 12) has only this
# node-wide setting: the per-queue x-consumer-timeout argument and consumer-timeout policy arrived in 3.11.15. Workers
# keep every partition well below it (JobQueueOptions.HandlerTimeout, default 25 min).
RABBITMQ_CONSUMER_TIMEOUT_MS=${WINTOK_RABBITMQ_CONSUMER_TIMEOUT_MS:-1800000}
AZURITE_VERSION=3.37.0
# A second, private set of servers (a test that stops one without disturbing others) sets WINTOK_SERVICES_DIR and this.
ENV_FILE=${WINTOK_SERVICES_ENV_FILE:-deploy/services.env}

# Azurite's well-known development account (public, documented by Microsoft; valid only against the emulator).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# choose_port NAME PREFERRED PINNED: prints the port NAME uses (remembered choice, pinned, preferred or next free).
choose_port() {
  local name=$1 preferred=$2 pinned=$3 file=$ROOT/$1.port port
  if [ -n "$pinned" ]; then echo "$pinned"; return; fi
  if [ -s "$file" ]; then cat "$file"; return; fi
  port=$preferred
  while port_open "$port"; do
    port=$((port + 1))
    [ "$port" -le "$((preferred + 50))" ] || die "no free port for $name in $preferred..$((preferred + 50))"
  done
  [ "$port" = "$preferred" ] || log "127.0.0.1:$preferred is taken by another process; $name uses $port"
  echo "$port" > "$file"
  echo "$port"
}

# wait_for NAME PORT PIDFILE LOGFILE: until the port accepts connections, the process is gone, or the timeout passes.
wait_for() {
  local name=$1 port=$2 pidfile=$3 logfile=$4 waited=0
  until port_open "$port"; do
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited during start-up (log: $logfile)"
    fi
    if [ "$waited" -ge "$((START_TIMEOUT * 5))" ]; then
      tail -n 30 "$logfile" >&2 || true
      die "$name did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT}s (log: $logfile)"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
}

# stop_pid NAME PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL. Only ever signals the pid this script recorded.
stop_pid() {
  local name=$1 pidfile=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  # Package maintainer scripts would start the system-wide service; forbid that while installing (we run our own).
  local guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || { [ "$guard" = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install $* failed"; }
  if [ "$guard" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

# ---------------------------------------------------------------- RabbitMQ
RMQ_DIR=$ROOT/rabbitmq
RMQ_BIN=/usr/lib/rabbitmq/bin

rabbitmq_env() {
  export HOME=$RMQ_DIR                       # throwaway Erlang cookie, shared with rabbitmqctl
  export RABBITMQ_NODENAME=wintok@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$RABBITMQ_PORT
  export RABBITMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))
  export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
  export RABBITMQ_LOG_BASE=$RMQ_DIR/log
  export RABBITMQ_PID_FILE=$RMQ_DIR/rabbitmq.pid
  export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
  export RABBITMQ_ENABLED_PLUGINS=""
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Erlang distribution on loopback only; no scheduler busy-waiting on a small shared machine.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
}

rabbitmq_install() {
  [ -x "$RMQ_BIN/rabbitmq-server" ] && return 0
  log "installing rabbitmq-server (apt)"
  apt_install rabbitmq-server
}

rabbitmq_running() { [ -f "$RMQ_DIR/rabbitmq.pid" ] && kill -0 "$(cat "$RMQ_DIR/rabbitmq.pid")" 2>/dev/null && port_open "$RABBITMQ_PORT"; }

rabbitmq_start() {
  rabbitmq_install
  rabbitmq_env
  if rabbitmq_running; then log "rabbitmq already running on 127.0.0.1:$RABBITMQ_PORT"; return 0; fi
  port_open "$RABBITMQ_PORT" && die "127.0.0.1:$RABBITMQ_PORT is taken by a process this script did not start"
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  echo '[].' > "$RMQ_DIR/enabled_plugins"   # no plugins: nothing that needs the network
  cat > "$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RABBITMQ_PORT
consumer_timeout = $RABBITMQ_CONSUMER_TIMEOUT_MS
log.console = false
log.file.level = info
EOF
  log "starting rabbitmq on 127.0.0.1:$RABBITMQ_PORT"
  rm -f "$RMQ_DIR/rabbitmq.pid"   # stale after a crash or a reboot
  setsid nohup "$RMQ_BIN/rabbitmq-server" > "$RMQ_DIR/stdout.log" 2>&1 < /dev/null &
  local launcher=$!
  # The node writes its own (Erlang VM) pid; until then watch the launcher.
  echo "$launcher" > "$RMQ_DIR/launcher.pid"
  local waited=0
  until [ -s "$RMQ_DIR/rabbitmq.pid" ]; do
    kill -0 "$launcher" 2>/dev/null || { tail -n 30 "$RMQ_DIR/stdout.log" >&2; die "rabbitmq exited during start-up (log: $RMQ_DIR/log)"; }
    [ "$waited" -ge "$((START_TIMEOUT * 5))" ] && die "rabbitmq wrote no pid file within ${START_TIMEOUT}s"
    sleep 0.2; waited=$((waited + 1))
  done
  wait_for rabbitmq "$RABBITMQ_PORT" "$RMQ_DIR/rabbitmq.pid" "$RMQ_DIR/stdout.log"
  # The listener opens late in boot, but await_startup also guarantees every boot step (quorum queue recovery) ran.
  "$RMQ_BIN/rabbitmqctl" -q await_startup --timeout "$START_TIMEOUT" >/dev/null
}

rabbitmq_stop() {
  rabbitmq_env
  if [ -f "$RMQ_DIR/rabbitmq.pid" ] && kill -0 "$(cat "$RMQ_DIR/rabbitmq.pid")" 2>/dev/null; then
    log "stopping rabbitmq"
    # shutdown waits for the VM to exit; quorum queue data stays on disk for the next start.
    "$RMQ_BIN/rabbitmqctl" -q shutdown --timeout 60 >/dev/null 2>&1 || stop_pid rabbitmq "$RMQ_DIR/rabbitmq.pid"
  fi
  rm -f "$RMQ_DIR/rabbitmq.pid"
  stop_pid rabbitmq-launcher "$RMQ_DIR/launcher.pid"
}

# ---------------------------------------------------------------- PostgreSQL
PG_DIR=$ROOT/postgres

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

postgres_install() {
  [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] && return 0
  log "installing postgresql (apt)"
  apt_install postgresql
}

postgres_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && kill -0 "$(head -n 1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null && port_open "$POSTGRES_PORT"; }

as_postgres() { runuser -u postgres -- "$@"; }

postgres_start() {
  postgres_install
  local bin; bin=$(pg_bin)
  if postgres_running; then log "postgres already running on 127.0.0.1:$POSTGRES_PORT"; return 0; fi
  port_open "$POSTGRES_PORT" && die "127.0.0.1:$POSTGRES_PORT is taken by a process this script did not start"
  mkdir -p "$PG_DIR"
  chmod 755 "$ROOT"
  chown postgres:postgres "$PG_DIR"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initdb $PG_DIR/data"
    # Trust auth on loopback only: a throwaway test cluster, never a deployment.
    as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale --no-sync > "$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  mkdir -p "$PG_DIR/run"; chown postgres:postgres "$PG_DIR/run"
  log "starting postgres on 127.0.0.1:$POSTGRES_PORT"
  # fsync off: throwaway data; a crash of this test server may lose it, which is fine.
  as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t "$START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -c unix_socket_directories=$PG_DIR/run -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
    start > /dev/null || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "postgres did not start within ${START_TIMEOUT}s (log: $PG_DIR/postgres.log)"; }
  wait_for postgres "$POSTGRES_PORT" /dev/null "$PG_DIR/postgres.log"
  if [ "$("$bin/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'wintok'")" != 1 ]; then
    "$bin/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres -qc 'create database wintok' > /dev/null
  fi
}

postgres_stop() {
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
    log "stopping postgres"
    as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop > /dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- Azurite
AZ_DIR=$ROOT/azurite

azurite_bin() { command -v azurite-blob || true; }

azurite_install() {
  [ -n "$(azurite_bin)" ] && return 0
  command -v npm > /dev/null || { log "installing nodejs and npm (apt)"; apt_install nodejs npm; }
  log "installing azurite@$AZURITE_VERSION (npm)"
  npm install -g --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" > /dev/null 2>&1 || die "npm install -g azurite@$AZURITE_VERSION failed"
}

azurite_running() { [ -f "$AZ_DIR/azurite.pid" ] && kill -0 "$(cat "$AZ_DIR/azurite.pid")" 2>/dev/null && port_open "$AZURITE_PORT"; }

azurite_start() {
  azurite_install
  if azurite_running; then log "azurite already running on 127.0.0.1:$AZURITE_PORT"; return 0; fi
  port_open "$AZURITE_PORT" && die "127.0.0.1:$AZURITE_PORT is taken by a process this script did not start"
  mkdir -p "$AZ_DIR/data"
  log "starting azurite (blob) on 127.0.0.1:$AZURITE_PORT"
  # Blob service only; data on disk so a stop/start keeps blobs; --skipApiVersionCheck lets newer SDKs talk to it.
  setsid nohup "$(azurite_bin)" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$AZ_DIR/data" \
    --loose --skipApiVersionCheck --disableProductStyleUrl --silent > "$AZ_DIR/azurite.log" 2>&1 < /dev/null &
  echo $! > "$AZ_DIR/azurite.pid"
  wait_for azurite "$AZURITE_PORT" "$AZ_DIR/azurite.pid" "$AZ_DIR/azurite.log"
}

azurite_stop() { stop_pid azurite "$AZ_DIR/azurite.pid"; }

# ---------------------------------------------------------------- commands
# One apt-get call for every missing Debian package, with the npm install of Azurite running beside it when npm is
# already there (on a fresh machine the two downloads overlap instead of adding up).
install_missing() {
  local packages=() npm_job=""
  [ -x "$RMQ_BIN/rabbitmq-server" ] || packages+=(rabbitmq-server)
  { [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; } || packages+=(postgresql)
  if [ -z "$(azurite_bin)" ]; then
    if command -v npm > /dev/null; then azurite_install & npm_job=$!; else packages+=(nodejs npm); fi
  fi
  if [ "${#packages[@]}" -gt 0 ]; then log "installing ${packages[*]} (apt)"; apt_install "${packages[@]}"; fi
  [ -n "$(azurite_bin)" ] || [ -n "$npm_job" ] || azurite_install
  if [ -n "$npm_job" ]; then wait "$npm_job" || die "azurite install failed"; fi
}

write_env() {
  cat > "$ENV_FILE" <<EOF
# Written by deploy/services.sh: connection strings of the local throwaway servers (loopback only).
export WINTOK_RABBITMQ='amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/'
export WINTOK_POSTGRES='Host=127.0.0.1;Port=$POSTGRES_PORT;Username=postgres;Database=wintok'
export WINTOK_BLOB_CONNECTION='DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT;'
EOF
}

status_one() {
  if "${1}_running"; then echo "$1: running"; else echo "$1: stopped"; fi
}

check_name() {
  case "${1:-}" in rabbitmq|postgres|azurite) ;; *) die "NAME must be rabbitmq, postgres or azurite (got '${1:-}')";; esac
}

mkdir -p "$ROOT"
RABBITMQ_PORT=$(choose_port rabbitmq "$RABBITMQ_PREFERRED_PORT" "${WINTOK_RABBITMQ_PORT:-}")
POSTGRES_PORT=$(choose_port postgres "$POSTGRES_PREFERRED_PORT" "${WINTOK_POSTGRES_PORT:-}")
AZURITE_PORT=$(choose_port azurite "$AZURITE_PREFERRED_PORT" "${WINTOK_AZURITE_PORT:-}")
[ -n "$RABBITMQ_PORT" ] && [ -n "$POSTGRES_PORT" ] && [ -n "$AZURITE_PORT" ] || die "could not choose ports"
case "${1:-}" in
  start)
    started=$(date +%s)
    install_missing
    rabbitmq_start & r=$!
    postgres_start & p=$!
    azurite_start & a=$!
    failed=0
    wait "$r" || failed=1; wait "$p" || failed=1; wait "$a" || failed=1
    [ "$failed" = 0 ] || die "some services did not start"
    write_env
    log "all services up in $(( $(date +%s) - started ))s; connection strings in $ENV_FILE"
    ;;
  stop) rabbitmq_stop; postgres_stop; azurite_stop ;;
  status) status_one rabbitmq; status_one postgres; status_one azurite ;;
  clean) rabbitmq_stop; postgres_stop; azurite_stop; rm -rf "$ROOT"; rm -f "$ENV_FILE" ;;
  start-one) check_name "${2:-}"; "${2}_start"; write_env ;;
  stop-one) check_name "${2:-}"; "${2}_stop" ;;
  restart) check_name "${2:-}"; "${2}_stop"; "${2}_start"; write_env ;;
  *) die "usage: $0 start | stop | status | clean | start-one NAME | stop-one NAME | restart NAME" ;;
esac
