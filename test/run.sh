#!/usr/bin/env bash
# Runs the uvu suite; on failure prints the failure details again at the end, where a CI log's
# tail shows them (uvu prints them under each file, far above the summary).
set -o pipefail
log=build/test-output.log
mkdir -p build
node test/run-suite.mjs build/test '\.test\.mjs$' 2>&1 | tee "$log"
rc=$?
if [ $rc -ne 0 ]; then
  echo "==== failures (from $log) ===="
  sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -A 25 -E '^ *(✘|FAIL)' | head -150
fi
exit $rc
