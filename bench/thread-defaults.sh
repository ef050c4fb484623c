#!/usr/bin/env bash
# bench/thread-defaults.sh: the derived thread defaults against fixed
# counts, with strata-server pinned to one CPU (as a one-CPU pod) and
# strata-load on another: Put and Get at c=16, 100-byte values, medians of
# R runs. See docs/operations.md ("CPUs and threads").
#
# Usage: bench/thread-defaults.sh [--runs R] [--duration S] [--other "FLAGS"]
#   --other FLAGS  the fixed setting to compare with (default the old
#                  defaults on a 2-core machine: "--cq_threads=2 --io_threads=4")
# Environment: BUILD_DIR (default <repo>/build), SERVER_CPU (0), CLIENT_CPU (1).
# Every server it starts is stopped by PID; data directories are removed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RUNS=3
DURATION=5
OTHER="--cq_threads=2 --io_threads=4"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --other) OTHER=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "thread-defaults.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d /tmp/strata-thread-defaults.XXXXXX)
P=""
trap '[[ -n $P ]] && kill -TERM "$P" 2>/dev/null; rm -rf "$WORK"' EXIT
out=$WORK/results.tsv
: >"$out"
for run in $(seq "$RUNS"); do
  for cfg in derived other; do
    d=$WORK/$cfg-$run
    flags=()
    # shellcheck disable=SC2206
    [[ $cfg == other ]] && flags=($OTHER)
    taskset -c "$SERVER_CPU" "$B/server/strata-server" --listen=127.0.0.1:0 \
      --metrics_listen= --data_dir="$d" "${flags[@]}" >"$d.out" 2>"$d.err" &
    P=$!
    for _ in $(seq 100); do grep -q 'listening on' "$d.out" 2>/dev/null && break; sleep 0.1; done
    port=$(grep -o 'listening on .*' "$d.out" | sed 's/.*://')
    [[ $run == 1 ]] && echo "$cfg: $(grep -o 'threads: .*' "$d.err" | head -1)"
    for op in put get; do
      line=$(taskset -c "$CLIENT_CPU" "$B/bench/strata-load" --target=127.0.0.1:"$port" \
        --op=$op --concurrency=16 --duration="$DURATION" --warmup=1 \
        --keys=100000 --value_size=100 2>&1 | grep -o '{.*}')
      printf '%s\t%s\t%s\n' "$cfg" "$op" "$line" >>"$out"
    done
    kill -TERM "$P"; wait "$P" 2>/dev/null || true; P=""
    rm -rf "$d"
  done
done
/usr/bin/python3 - "$out" "$OTHER" <<'PY'
import json, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    cfg, op, j = l.rstrip("\n").split("\t", 2)
    rows.setdefault((op, cfg), []).append(json.loads(j))
print("| op (c=16) | derived ops/s | %s ops/s | ratio | derived p99 ms | other p99 ms |" % sys.argv[2])
print("|---|---|---|---|---|---|")
for op in ("put", "get"):
    d, o = rows[(op, "derived")], rows[(op, "other")]
    md = statistics.median(x["ops_per_sec"] for x in d)
    mo = statistics.median(x["ops_per_sec"] for x in o)
    print("| %s | %.0f | %.0f | %.2f | %.2f | %.2f |" % (op, md, mo, md / mo if mo else 0,
          statistics.median(x["p99_us"] for x in d) / 1000, statistics.median(x["p99_us"] for x in o) / 1000))
PY
