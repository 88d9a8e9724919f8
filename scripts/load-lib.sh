# Shared by the load-*.sh scripts (sourced).

# prepare builds parley-load from this tree into $PARLEY_LOAD (default
# /tmp/parley-load) unless it is there, sets $load to it, waits for a quiet
# machine and raises the descriptor limit (10 000 devices need more than
# 10 000 on each side).
prepare() {
  load=${PARLEY_LOAD:-/tmp/parley-load}
  [ -x "$load" ] || (cd "$(dirname "${BASH_SOURCE[0]}")/.." && go build -o "$load" ./cmd/parley-load)
  wait_quiet
  ulimit -n 20000
}

# wait_quiet waits until the machine was at most 15 % busy over 3 s, for
# two minutes at most.
wait_quiet() {
  local i a b tot idle j
  for i in $(seq 40); do
    read -ra a </proc/stat
    sleep 3
    read -ra b </proc/stat
    tot=0
    for j in 1 2 3 4 5 6 7 8; do tot=$((tot + b[j] - a[j])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    [ $((100 * (tot - idle) / tot)) -le 15 ] && return 0
  done
  echo "load: the machine stayed busy; measuring anyway" >&2
}

# wait_listening waits (at most 30 s) until HOST:PORT answers /healthz.
wait_listening() {
  local i
  for i in $(seq 300); do
    curl -fs "http://$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "load: nothing answers on $1" >&2
  return 1
}
