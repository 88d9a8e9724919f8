#!/usr/bin/env bash
# load-cluster.sh: one parley-load run against two parleyd nodes sharing a
# fresh PostgreSQL database (127.0.0.1:5432, user postgres) and NATS
# (127.0.0.1:4222, a subject prefix of its own), as recorded in
# docs/PERFORMANCE.md.
#
#   scripts/load-cluster.sh OUT PARLEYD [parley-load flags...]
#
# The report's "other CPU cores" is the second node, PostgreSQL and NATS
# together (everything but the first node and the tool).
set -euo pipefail
out=$1 bin=$2
shift 2
. "$(dirname "$0")/load-lib.sh"
prepare # sets $load, waits for a quiet machine
db=parley_perf_$$_$RANDOM
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db"
pids=()
dirs=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  rm -rf "${dirs[@]}"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}
trap cleanup EXIT
for n in 1 2; do
  d=$(mktemp -d)
  dirs+=("$d")
  "$bin" --data "$d" --addr 127.0.0.1:1818$n --log-level warn \
    --db "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" \
    --nats nats://127.0.0.1:4222 --nats-prefix "perf$db" \
    --register-rate 1000000 --register-burst 100000 --join-rate 1000000 --join-burst 100000 &
  pids+=($!)
  wait_listening 127.0.0.1:1818$n
done
echo "# cluster $bin | parley-load $*" >"$out"
timeout 900 "$load" --server http://127.0.0.1:18181,http://127.0.0.1:18182 --server-pid "${pids[0]}" \
  --source-addrs 127.0.0.1-127.0.0.8 "$@" >>"$out" 2>&1
