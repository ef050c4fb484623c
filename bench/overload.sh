#!/usr/bin/env bash
# bench/overload.sh: the overload benchmark of issue 22. A fresh
# strata-server (defaults unless given flags) runs pinned to one CPU inside a
# cgroup-v1 CPU quota (as a Kubernetes pod with a CPU limit), so that its
# capacity is well below what strata-load, pinned to another CPU, can send:
# the benchmark measures the node, not the load generator. Per operation
# (durable Put, Get) and run:
#
#   1. closed-loop capacity C: strata-load keeping --capacity_concurrency
#      RPCs outstanding (enough to saturate the node: a durable Put's group
#      commit grows with the writers waiting, so too few understate it);
#   2. open loop at 1x C for --duration_1x seconds;
#   3. open loop at --factor x C (default 2x) for --duration seconds, the
#      server's RSS sampled every 0.2 s;
#   4. recovery: right after the load, a probe (one RPC at a time, 0.2 s) is
#      repeated until its p99 is within 2x + 5 ms of the probe's p99 before
#      the load, with no error; the time until that probe started.
#
# Prints one table: capacity, goodput at 1x and at the factor, goodput /
# capacity, p50/p99 of the requests answered OK, answers by code, arrivals
# the client gave up (missed: no free slot within --timeout) or refused
# itself (throttled: --load_flags --adaptive_throttle; not lost goodput),
# peak RSS, recovery time, and the load generator's CPU share (near 1.0 =
# it measured itself).
# See docs/operations.md ("Overload") and docs/benchmarks.md.
#
# Usage: bench/overload.sh [--cpu_quota Q] [--duration S] [--duration_1x S]
#                          [--factor F] [--ops put,get] [--runs R]
#                          [--timeout S] [--concurrency N] [--channels N]
#                          [-- extra strata-server flags]
#   --cpu_quota Q       CPUs the server may use (cfs quota/period; default
#                       0.3). 0 = no cgroup (pinning only)
#   --duration S        seconds of the open loop at the factor (default 60)
#   --duration_1x S     seconds of the open loop at 1x (default 10)
#   --capacity_seconds S  seconds of the closed-loop capacity run (default 5)
#   --capacity_concurrency N  RPCs outstanding while measuring C (default 512)
#   --factor F          overload factor (default 2)
#   --ops LIST          comma list of put, get (default put,get)
#   --runs R            runs per op; the table shows medians (default 1)
#   --timeout S         deadline of every request, from its arrival (default 1)
#   --concurrency N     most requests outstanding in the open loop (default
#                       0 = rate x timeout, at least 256)
#   --channels N        client connections (default 64)
#   --load_flags "..."  extra strata-load flags for the open-loop runs
# Environment: BUILD_DIR (default <repo>/build), WORK_DIR (default a fresh
# /tmp/strata-overload.XXXXXX), SERVER_CPU (default 0), CLIENT_CPU (default
# 1). Needs root for the cgroup (/sys/fs/cgroup/cpu, cgroup v1). Every
# server it starts is stopped by PID and the cgroup removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
QUOTA=0.3
DURATION=60
DURATION_1X=10
CAP_SECONDS=5
CAP_CONCURRENCY=512
FACTOR=2
OPS=put,get
RUNS=1
TIMEOUT=1
CONCURRENCY=0
CHANNELS=64
LOAD_FLAGS=""
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu_quota) QUOTA=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --duration_1x) DURATION_1X=$2; shift 2 ;;
    --capacity_seconds) CAP_SECONDS=$2; shift 2 ;;
    --capacity_concurrency) CAP_CONCURRENCY=$2; shift 2 ;;
    --factor) FACTOR=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --channels) CHANNELS=$2; shift 2 ;;
    --load_flags) LOAD_FLAGS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,48p' "$0"; exit 0 ;;
    *) echo "overload.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
STRATA=$BUILD_DIR/server/strata-server
LOAD=$BUILD_DIR/bench/strata-load
for b in "$STRATA" "$LOAD"; do
  [[ -x $b ]] || { echo "overload.sh: $b not built (cmake --build $BUILD_DIR --target strata-server strata-load; needs -DSTRATA_BUILD_BENCH=ON)" >&2; exit 2; }
done
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PY=/usr/bin/python3
WORK=${WORK_DIR:-$(mktemp -d /tmp/strata-overload.XXXXXX)}
mkdir -p "$WORK"
echo "work dir: $WORK"

CGROUP=""
if [[ $QUOTA != 0 ]]; then
  [[ -d /sys/fs/cgroup/cpu && -w /sys/fs/cgroup/cpu ]] || {
    echo "overload.sh: needs root and cgroup v1's /sys/fs/cgroup/cpu (or --cpu_quota 0)" >&2; exit 2; }
  quota_us=$($PY -c "print(int(float('$QUOTA') * 100000))")
  CGROUP=/sys/fs/cgroup/cpu/strata-overload-$$
fi

PID=""
SAMPLER=""
stop_server() {
  if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; fi
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  fi
  PID=""
}
cleanup() {
  stop_server
  # The cgroup can only go once it holds no task.
  if [[ -n $CGROUP && -d $CGROUP ]]; then rmdir "$CGROUP" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [[ -n $CGROUP ]]; then
  mkdir "$CGROUP"
  echo 100000 >"$CGROUP/cpu.cfs_period_us"
  echo "$quota_us" >"$CGROUP/cpu.cfs_quota_us"
fi

load() {  # load ARGS...: strata-load pinned to the client CPU; output on stdout
  taskset -c "$CLIENT_CPU" "$LOAD" --target=127.0.0.1:"$PORT" --server_pid="$PID" "$@" 2>&1 || true
}
json() { grep -o 'json: {.*}' | tail -1 | cut -c7-; }

# probe OP: one RPC at a time for 0.2 s; prints "p99_us errors".
probe() {
  load --op="$1" --concurrency=1 --channels=1 --threads=1 --duration=0.2 \
    --warmup=0 --timeout=1 --keys=10000 | json |
    $PY -c 'import json,sys
t = sys.stdin.read().strip()
j = json.loads(t) if t else {}
print(j.get("p99_us", 1e9) if j.get("ops", 0) > 0 else 1e9, sum(j.get("errors", {}).values()))'
}

# run OP N: one fresh server; appends a JSON line to results.jsonl.
run() {
  local op=$1 n=$2 dir=$WORK/$1-$2
  rm -rf "$dir"; mkdir -p "$dir"
  # The subshell joins the cgroup, then becomes the server (same PID).
  (
    if [[ -n $CGROUP ]]; then echo "$BASHPID" >"$CGROUP/cgroup.procs"; fi
    exec taskset -c "$SERVER_CPU" "$STRATA" --listen=127.0.0.1:0 \
      --metrics_listen=127.0.0.1:0 --data_dir="$dir/data" "${EXTRA[@]}"
  ) >"$dir/server.out" 2>"$dir/server.err" &
  PID=$!
  PORT=""
  for _ in $(seq 100); do
    PORT=$(grep -m1 -o 'listening on .*' "$dir/server.out" 2>/dev/null | sed 's/.*://' || true)
    [[ -n $PORT ]] && break
    sleep 0.1
  done
  [[ -n $PORT ]] || { echo "server did not start:"; cat "$dir/server.err"; exit 1; }
  local mport; mport=$(grep -m1 -o 'metrics on [^ ]*' "$dir/server.out" | sed 's/.*://' || true)
  # Keys 0..9999 exist for Get (and probes); Puts overwrite them.
  load --op=put --preload --keys=10000 --concurrency=64 --channels=16 \
    --duration=0.5 --warmup=0 >"$dir/preload.txt"
  local normal; normal=$(probe "$op" | cut -d' ' -f1)

  load --op="$op" --keys=10000 --concurrency="$CAP_CONCURRENCY" \
    --channels="$CHANNELS" --threads=1 \
    --warmup=1 --duration="$CAP_SECONDS" --timeout="$TIMEOUT" \
    --label=capacity >"$dir/capacity.txt"
  local cap; cap=$(json <"$dir/capacity.txt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["ops_per_sec"])')
  open_loop() {  # open_loop RATE SECONDS LABEL
    local conc=$CONCURRENCY
    if [[ $conc == 0 ]]; then conc=$($PY -c "print(max(256, int($1 * $TIMEOUT)))"); fi
    # shellcheck disable=SC2086
    load --op="$op" --keys=10000 --rate="$1" --concurrency="$conc" \
      --channels="$CHANNELS" --threads=1 --warmup=1 --duration="$2" \
      --timeout="$TIMEOUT" --label="$3" $LOAD_FLAGS
  }
  open_loop "$cap" "$DURATION_1X" 1x >"$dir/1x.txt"
  local rate; rate=$($PY -c "print(round($cap * $FACTOR))")
  ( while kill -0 "$PID" 2>/dev/null; do
      awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status" 2>/dev/null || true
      sleep 0.2
    done ) >"$dir/rss.txt" &
  SAMPLER=$!
  open_loop "$rate" "$DURATION" over >"$dir/over.txt"
  local t_end; t_end=$(date +%s.%N)
  local recovery="" p99 errs
  for _ in $(seq 100); do  # At most ~30 s of probes.
    local t_probe; t_probe=$(date +%s.%N)
    read -r p99 errs < <(probe "$op")
    if [[ $errs == 0 ]] && $PY -c "import sys; sys.exit(0 if $p99 <= 2 * $normal + 5000 else 1)"; then
      recovery=$($PY -c "print(round($t_probe - $t_end, 2))")
      break
    fi
  done
  kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
  local hwm; hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$PID/status")
  local metrics=""
  if [[ -n $mport ]]; then
    metrics=$(curl -s --max-time 5 "127.0.0.1:$mport/metrics" | grep -E '^strata_(rpc_requests_total\{.*method="(Put|Get)"|writes_expired_in_queue_total|rpc_requests_shed)' || true)
  fi
  echo "$metrics" >"$dir/metrics.txt"
  stop_server
  rm -rf "$dir/data"
  $PY - "$op" "$n" "$cap" "$normal" "${recovery:--1}" "$hwm" "$dir" >>"$WORK/results.jsonl" <<'PY'
import json, sys
op, n, cap, normal, recovery, hwm, d = sys.argv[1:8]
def last_json(path):
    for line in reversed(open(path).read().splitlines()):
        if line.startswith("json: "):
            return json.loads(line[6:])
    return {}
rss = [int(x) for x in open(d + "/rss.txt").read().split() if x.isdigit()]
one, over = last_json(d + "/1x.txt"), last_json(d + "/over.txt")
print(json.dumps({"op": op, "run": int(n), "capacity": float(cap),
    "probe_p99_us": float(normal), "recovery_s": float(recovery),
    "peak_rss_mib": max(rss + [0]) / 1024.0, "vmhwm_mib": int(hwm) / 1024.0,
    "one": one, "over": over,
    "server_metrics": open(d + "/metrics.txt").read().strip().splitlines()}))
PY
  tail -1 "$WORK/results.jsonl" | $PY -c 'import json,sys
r = json.load(sys.stdin); o = r["over"]
print("%s run %d: capacity %.0f/s; at %.0f/s goodput %.0f/s (%.0f%%), p99 %.0f ms, errors %s, missed %s, throttled %s; peak RSS %.0f MiB; recovery %.2f s" % (
  r["op"], r["run"], r["capacity"], o.get("rate", 0), o.get("ops_per_sec", 0),
  100 * o.get("ops_per_sec", 0) / max(r["capacity"], 1), o.get("p99_us", 0) / 1000,
  o.get("errors"), o.get("missed"), o.get("throttled", 0), r["peak_rss_mib"], r["recovery_s"]))'
}

IFS=, read -r -a OPLIST <<<"$OPS"
for op in "${OPLIST[@]}"; do
  case "$op" in put|get) ;; *) echo "overload.sh: --ops: put or get, not $op" >&2; exit 2 ;; esac
  for n in $(seq "$RUNS"); do run "$op" "$n"; done
done

echo
echo "server: ${EXTRA[*]:-defaults}, CPU $SERVER_CPU, quota ${QUOTA} CPU; load: CPU $CLIENT_CPU, ${FACTOR}x for ${DURATION} s, timeout ${TIMEOUT} s, $CHANNELS connections ${LOAD_FLAGS}; medians of $RUNS run(s)"
$PY - "$WORK/results.jsonl" "$FACTOR" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["op"], []).append(r)
f = sys.argv[2]
print("| op | capacity/s | goodput 1x/s | goodput %sx/s | %sx / capacity | p50 ms | p99 ms | answers at %sx (last run) | missed | throttled | peak RSS MiB | recovery s | client CPU |" % (f, f, f))
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for op, rs in rows.items():
    med = lambda g: statistics.median(g(r) for r in rs)
    last = rs[-1]["over"]
    answers = dict(last.get("errors", {}))
    answers = " ".join(["OK=%d" % last.get("ops", 0)] + ["%s=%d" % kv for kv in sorted(answers.items())])
    print("| %s | %.0f | %.0f | %.0f | %.0f%% | %.1f | %.1f | %s | %d | %d | %.0f | %.2f | %.2f |" % (
        op, med(lambda r: r["capacity"]), med(lambda r: r["one"].get("ops_per_sec", 0)),
        med(lambda r: r["over"].get("ops_per_sec", 0)),
        100 * med(lambda r: r["over"].get("ops_per_sec", 0) / max(r["capacity"], 1)),
        med(lambda r: r["over"].get("p50_us", 0)) / 1000, med(lambda r: r["over"].get("p99_us", 0)) / 1000,
        answers, med(lambda r: r["over"].get("missed", 0)),
        med(lambda r: r["over"].get("throttled", 0)), med(lambda r: r["peak_rss_mib"]),
        med(lambda r: r["recovery_s"]), med(lambda r: r["over"].get("client_cpu_share", 0))))
PY
