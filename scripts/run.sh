#!/usr/bin/env bash
# make run: start a single-node corral in the foreground, data under the
# checkout. Re-running is safe: the data is kept, the admin password is
# printed again, and an already running instance is reported, not doubled.
set -euo pipefail
run_dir=$1 socket=$2
data="$run_dir/data"
mkdir -p "$data"
chmod 700 "$run_dir" "$data"
if curl -sk --max-time 2 https://localhost:8006/api/v1/health >/dev/null 2>&1; then
  echo "corral is already running on https://localhost:8006"
  [ -f "$data/initial-admin-password" ] && echo "user admin@corral, password $(cat "$data/initial-admin-password")"
  exit 0
fi
if [ -f "$data/initial-admin-password" ]; then
  echo "existing cluster in $data: user admin@corral, password $(cat "$data/initial-admin-password")"
fi
echo "starting corral on https://localhost:8006 (data: $data, socket: $socket); Ctrl-C stops it"
echo "CLI: ./bin/corral login --server https://localhost:8006 --user admin@corral"
exec ./bin/corral daemon --data-dir "$data" --socket "$socket" --node "$(hostname -s | tr -c 'A-Za-z0-9-\n' '-')"
