#!/usr/bin/env bash
# Prints every skipped test with its reason, so a skip is never silent.
log=${1:-.test.log}
skips=$(grep -E -- '--- SKIP' "$log" | sed 's/^ *//' || true)
if [ -n "$skips" ]; then
  echo "== skipped tests (not passed) =="
  grep -E -A2 -- '--- SKIP' "$log" | grep -v -- '^--$'
fi
exit 0
