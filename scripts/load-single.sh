#!/usr/bin/env bash
# load-single.sh: one parley-load run against one parleyd on SQLite, as
# recorded in docs/PERFORMANCE.md.
#
#   scripts/load-single.sh OUT PARLEYD [parley-load flags...]
#
# OUT is the report file; PARLEYD the parleyd binary (so that an older
# build can be measured by the same tool). parley-load is built from this
# tree into $PARLEY_LOAD (default /tmp/parley-load) if it is not there.
# Extra parleyd flags: $PARLEYD_FLAGS. It waits (at most two minutes) until
# the machine is quiet, starts parleyd on 127.0.0.1:18080 with a fresh data
# folder, runs the tool, stops parleyd and removes the folder.
set -euo pipefail
out=$1 bin=$2
shift 2
. "$(dirname "$0")/load-lib.sh"
prepare # sets $load, waits for a quiet machine
data=$(mktemp -d)
# shellcheck disable=SC2086
"$bin" --data "$data" --addr 127.0.0.1:18080 --log-level warn \
  --register-rate 1000000 --register-burst 100000 --join-rate 1000000 --join-burst 100000 ${PARLEYD_FLAGS:-} &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
wait_listening 127.0.0.1:18080
echo "# $bin ${PARLEYD_FLAGS:-} | parley-load $*" >"$out"
timeout 900 "$load" --server http://127.0.0.1:18080 --server-pid "$pid" --fsync-dir "$data" \
  --source-addrs 127.0.0.1-127.0.0.8 "$@" >>"$out" 2>&1
