#!/usr/bin/env bash
# Installs DuckDB's Node API (npm @duckdb/node-api, which ships its native library as an npm package) for the test that
# reads a token dataset the way DuckDB users do (tests/WinTok.Data.Tests/Shards/DatasetLayoutTests.cs), then prints the
# line that points the tests at it:
#
#   eval "$(bash deploy/duckdb.sh)"      # exports WINTOK_DUCKDB_NODE_API
#
# Environment: WINTOK_TOOLS_DIR (install root; default /tmp/wintok-tools). Installs nodejs and npm (apt) when missing.
set -euo pipefail

DUCKDB_NODE_API_VERSION=1.5.6-r.1
DIR=${WINTOK_TOOLS_DIR:-/tmp/wintok-tools}/duckdb-node-api-$DUCKDB_NODE_API_VERSION
MODULE=$DIR/node_modules/@duckdb/node-api

log() { printf '[duckdb] %s\n' "$*" >&2; }
die() { printf '[duckdb] error: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$MODULE/package.json" ]; then
  if ! command -v npm > /dev/null; then
    log "installing nodejs and npm (apt)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm > /dev/null; } || die "apt-get install nodejs npm failed"
  fi
  log "installing @duckdb/node-api@$DUCKDB_NODE_API_VERSION (npm) into $DIR"
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "@duckdb/node-api@$DUCKDB_NODE_API_VERSION" > /dev/null 2>&1 \
    || die "npm install @duckdb/node-api@$DUCKDB_NODE_API_VERSION failed"
fi
printf "export WINTOK_DUCKDB_NODE_API='%s'\n" "$MODULE"
