#!/usr/bin/env bash
# bench/memory-burst.sh: the "burst of large values" of issue 22 against a
# fresh strata-server per allocator variant: C client connections each
# keeping P 2 MiB Puts outstanding for D seconds (bounded in time; every
# Put has a deadline). Reports, per variant, the server's peak RSS (VmHWM),
# its RSS 5 s after the burst, Put throughput, p99 and the answers by code.
# See docs/operations.md ("Memory").
#
# Usage: bench/memory-burst.sh [--connections C] [--per_connection P]
#                              [--duration D] [--runs R] [--variants LIST]
#                              [-- extra strata-server flags]
#   --connections C     client connections (default 40)
#   --per_connection P  Puts outstanding per connection (default 50)
#   --duration D        seconds of load (default 10, no warmup)
#   --runs R            runs per variant; the table shows medians (default 1)
#   --variants LIST     comma list of (default all):
#                         default   strata-server as shipped
#                         untuned   --malloc_tuning=false (glibc's own defaults)
#                         unbounded --malloc_tuning=false --max_inflight_bytes=0
#                                   --transport_memory_bytes=0 (before issue 22)
#                         mmap1m    as shipped but MALLOC_MMAP_THRESHOLD_=1048576
#                                   (only buffers of 1 MiB and more in mmap)
#                         jemalloc  --malloc_tuning=false with Debian's
#                                   libjemalloc2 LD_PRELOADed
# Environment: BUILD_DIR (default <repo>/build), WORK_DIR (default a fresh
# /tmp/strata-memory-burst.XXXXXX, disk-backed), SERVER_CPU/CLIENT_CPU
# (unset = not pinned). Every server it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
CONNS=40
PER_CONN=50
DURATION=10
RUNS=1
VARIANTS="default,mmap1m,untuned,unbounded,jemalloc"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) CONNS=$2; shift 2 ;;
    --per_connection) PER_CONN=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "memory-burst.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
STRATA=$BUILD_DIR/server/strata-server
LOAD=$BUILD_DIR/bench/strata-load
for b in "$STRATA" "$LOAD"; do
  [[ -x $b ]] || { echo "memory-burst.sh: $b not built (ninja -C $BUILD_DIR strata-server strata-load)" >&2; exit 2; }
done
JEMALLOC=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -1 || true)
WORK=${WORK_DIR:-$(mktemp -d /tmp/strata-memory-burst.XXXXXX)}
mkdir -p "$WORK"
echo "work dir: $WORK"
pin() { if [[ -n ${1:-} ]]; then echo "taskset -c $1"; fi; }

PID=""
cleanup() { if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# run VARIANT N: one fresh server, one burst; appends a line to results.
run() {
  local variant=$1 n=$2 env=() flags=()
  case "$variant" in
    default) ;;
    untuned) flags=(--malloc_tuning=false) ;;
    unbounded) flags=(--malloc_tuning=false --max_inflight_bytes=0 --transport_memory_bytes=0) ;;
    mmap1m) env=(MALLOC_MMAP_THRESHOLD_=1048576) ;;
    jemalloc)
      [[ -n $JEMALLOC ]] || { echo "jemalloc: libjemalloc2 not installed, skipped"; return 0; }
      flags=(--malloc_tuning=false); env=(LD_PRELOAD="$JEMALLOC") ;;
    *) echo "memory-burst.sh: unknown variant $variant" >&2; exit 2 ;;
  esac
  local dir=$WORK/$variant-$n
  rm -rf "$dir"
  # shellcheck disable=SC2046
  env "${env[@]}" $(pin "${SERVER_CPU:-}") "$STRATA" --listen=127.0.0.1:0 \
    --metrics_listen= --data_dir="$dir" "${flags[@]}" "${EXTRA[@]}" \
    >"$dir.out" 2>"$dir.err" &
  PID=$!
  local port=""
  for _ in $(seq 100); do
    port=$(grep -m1 -o 'listening on .*' "$dir.out" 2>/dev/null | sed 's/.*://' || true)
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "server did not start:"; cat "$dir.err"; exit 1; }
  local idle; idle=$(kib "$PID" VmRSS)
  # shellcheck disable=SC2046
  $(pin "${CLIENT_CPU:-}") "$LOAD" --target=127.0.0.1:"$port" --op=put \
    --value_size=2097152 --concurrency=$((CONNS * PER_CONN)) \
    --channels="$CONNS" --threads=2 --duration="$DURATION" --warmup=0 \
    --keys=100000 --timeout=30 --label="$variant" >"$dir.load" 2>&1 || true
  local peak; peak=$(kib "$PID" VmHWM)
  sleep 5  # Let the server settle: what it keeps after the burst.
  local after; after=$(kib "$PID" VmRSS)
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  rm -rf "$dir"  # Gigabytes per run: keep only the logs.
  local json; json=$(grep -o '{.*}' "$dir.load" | tail -1)
  /usr/bin/python3 - "$variant" "$idle" "$peak" "$after" "$json" >>"$WORK/results.tsv" <<'PY'
import json, sys
v, idle, peak, after, line = sys.argv[1:6]
j = json.loads(line) if line else {}
print("\t".join([v, str(int(idle) // 1024), str(int(peak) // 1024),
                 str(int(after) // 1024),
                 "%.1f" % (j.get("ops_per_sec", 0) * 2), # MiB/s of 2 MiB values
                 "%.0f" % j.get("ops_per_sec", 0),
                 "%.1f" % (j.get("p99_us", 0) / 1000.0),
                 json.dumps(j.get("errors", {}), separators=(",", ":"))]))
PY
  tail -1 "$WORK/results.tsv"
}

: >"$WORK/results.tsv"
IFS=, read -r -a VLIST <<<"$VARIANTS"
for v in "${VLIST[@]}"; do
  for n in $(seq "$RUNS"); do run "$v" "$n"; done
done

echo
echo "burst: $CONNS connections x $PER_CONN outstanding 2 MiB Puts, ${DURATION}s; medians of $RUNS run(s)"
/usr/bin/python3 - "$WORK/results.tsv" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows.setdefault(f[0], []).append(f)
print("| allocator / bounds | idle RSS MiB | peak RSS MiB | RSS 5 s after MiB | MiB/s | Puts/s | p99 ms | answers |")
print("|---|---|---|---|---|---|---|---|")
for v, rs in rows.items():
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |" % (
        v, med(1), med(2), med(3), med(4), med(5), med(6), rs[-1][7]))
PY
