#!/usr/bin/env bash
# The one test command (README, .ci/run): starts the real services the integration tests talk to, then runs
# every test project of the solution. Works on a fresh Debian 12 machine with only the .NET SDK installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f deploy/services.sh ]; then
  bash deploy/services.sh start
  # shellcheck disable=SC1091
  source deploy/services.env
fi
# DuckDB (npm) for the test that reads a token dataset's root as DuckDB users do.
eval "$(bash deploy/duckdb.sh)"
# Debian's chromium and chromedriver for the dashboard's browser tests (their screenshots land in TestResults/dashboard/).
bash deploy/browser.sh

log=$(mktemp)
set +e
# One test project at a time: the fault-injection tests stop and restart the shared RabbitMQ, PostgreSQL and Azurite,
# which must not happen under another project's tests.
dotnet test WinTok.sln -c Release --max-parallel-test-modules 1 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line CI can read, summed over all test projects.
passed=$(grep -Eo 'succeeded: [0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
failed=$(grep -Eo 'failed: [0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
skipped=$(grep -Eo 'skipped: [0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
echo "Tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
