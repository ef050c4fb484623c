#!/usr/bin/env bash
# bench/connections.sh: how many connections one strata-server holds and what
# they cost (issue 20, item 4). See docs/benchmarks.md, "Connections".
#
# Usage: bench/connections.sh [--idle N] [--sources K] [--runs R]
#                             [--duration S] [--skip ITEMS]
#   --idle N       idle connections to hold (default 100000; capped by the
#                  descriptor limit the script can get, see below)
#   --sources K    source addresses 127.0.0.2 .. 127.0.0.(K+1) the idle
#                  connections are spread over (default 8; each has
#                  ip_local_port_range ports, ~28,000 by default)
#   --runs R       runs per point; the summary shows medians (default 3)
#   --duration S   seconds measured per load point (default 5, +1 s warmup)
#   --skip ITEMS   comma list of idle,active to leave out
# Environment: BUILD_DIR (default <repo>/build-bench), WORK_DIR, SERVER_CPU
# (0), CLIENT_CPU (1), EXTRA_SERVER_FLAGS (added to every strata-server).
#
# idle:   per run a fresh strata-server (pinned to SERVER_CPU,
#         --transport_memory_bytes sized for N connections: gRPC charges
#         ~14 KiB of each idle connection to its quota and closes idle ones
#         beyond it), Gets at c=16 for S seconds, then bench/strata-idle-conns
#         opens N idle HTTP/2 connections and holds them while the same Gets
#         run again; reports connections held, server RSS per connection,
#         and the Gets with the connections held against without.
# active: one server; Gets at c=16 over 16 connections and at c=1000 over
#         1,000 connections (one outstanding Get each), interleaved, R runs;
#         reports the ratio of medians and server CPU per Get.
#
# Descriptors: the server and strata-idle-conns each need N + ~100. The
# script raises its soft limit to the hard one (and the hard one to N + 1000
# when it may: root with CAP_SYS_RESOURCE); when the hard limit is lower, N
# is capped to fit and the report says so. Every process it starts is
# stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
IDLE=100000
SOURCES=8
RUNS=3
DURATION=5
SKIP=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --idle) IDLE=$2; shift 2 ;;
    --sources) SOURCES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --skip) SKIP=$2; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "connections.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_BUILD_TESTS=OFF "${launcher[@]}" >/dev/null
nice -n 10 ninja -C "$BUILD_DIR" -j2 strata-server strata-load strata-idle-conns >/dev/null
LOAD=$BUILD_DIR/bench/strata-load
IDLE_TOOL=$BUILD_DIR/bench/strata-idle-conns
STRATA=$BUILD_DIR/server/strata-server

# --- descriptors --------------------------------------------------------------
want=$((IDLE + 1000))
if (( $(ulimit -Hn) < want )); then ulimit -Hn "$want" 2>/dev/null || true; fi
ulimit -Sn "$(ulimit -Hn)"
hard=$(ulimit -Hn)
if (( IDLE > hard - 200 )); then
  echo "note: descriptor hard limit is $hard (raising it needs CAP_SYS_RESOURCE):" \
       "holding $((hard - 200)) idle connections instead of $IDLE"
  IDLE=$((hard - 200))
fi
echo "machine: $(nproc) cores; nofile $(ulimit -Sn)/$hard;" \
     "somaxconn $(cat /proc/sys/net/core/somaxconn);" \
     "ip_local_port_range $(tr '\t' '-' < /proc/sys/net/ipv4/ip_local_port_range)"

WORK=${WORK_DIR:-$(mktemp -d /tmp/strata-connections.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
echo "work dir: $WORK"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME FLAGS...: sets SPID and SPORT.
start_server() {
  local name=$1; shift
  rm -rf "$WORK/$name.data"
  # shellcheck disable=SC2086
  taskset -c "$SERVER_CPU" "$STRATA" --listen=127.0.0.1:0 --metrics_listen= \
    --data_dir="$WORK/$name.data" --cq_threads=1 ${EXTRA_SERVER_FLAGS:-} "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
  SPORT=""
  for _ in $(seq 300); do
    SPORT=$(grep -m1 -o 'listening on .*' "$WORK/$name.out" 2>/dev/null | sed 's/.*://' || true)
    [[ -n "$SPORT" ]] && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "connections.sh: $name did not start:" >&2; cat "$WORK/$name.err" >&2; exit 1
}
stop_server() {
  kill -TERM "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
}
# get LABEL CONC CHANNELS: one strata-load Get point against $SPORT/$SPID.
get() {
  taskset -c "$CLIENT_CPU" "$LOAD" --target="127.0.0.1:$SPORT" --op=get \
    --concurrency="$2" --channels="$3" --duration="$DURATION" --warmup=1 \
    --keys=100000 --label="$1" --server_pid="$SPID" \
    | tee -a "$WORK/load.log" | grep '^json: ' | sed 's/^json: //' >> "$RESULTS"
}
preload() {
  taskset -c "$CLIENT_CPU" "$LOAD" --target="127.0.0.1:$SPORT" --op=get \
    --concurrency=64 --duration=0.1 --warmup=0 --keys=100000 --preload \
    --label=preload >/dev/null
}

# --- idle connections ---------------------------------------------------------
if ! skipped idle; then
  # 256 MiB for requests (the default) + 16 KiB per connection.
  quota=$(( (256 << 20) + IDLE * 16384 ))
  for run in $(seq "$RUNS"); do
    echo "-- idle: $IDLE connections over $SOURCES source addresses, run $run"
    start_server idle --transport_memory_bytes="$quota"
    preload
    get idle-baseline 16 16
    taskset -c "$CLIENT_CPU" "$IDLE_TOOL" --target="127.0.0.1:$SPORT" \
      --connections="$IDLE" --source_addresses="$SOURCES" \
      --server_pid="$SPID" --hold=600 >"$WORK/idle-$run.out" 2>&1 &
    tool=$!
    PIDS+=("$tool")
    # Wait (bounded) for the tool to say every connection is open.
    for _ in $(seq 3000); do
      grep -q '^holding' "$WORK/idle-$run.out" && break
      kill -0 "$tool" 2>/dev/null || break
      sleep 0.1
    done
    get idle-held 16 16
    kill -TERM "$tool" 2>/dev/null || true
    wait "$tool" 2>/dev/null || true
    grep -v '^json' "$WORK/idle-$run.out" | sed 's/^/   /'
    grep '^json: ' "$WORK/idle-$run.out" | sed 's/^json: //' \
      | sed 's/^{/{"label":"idle-tool",/' >> "$RESULTS"
    stop_server
  done
fi

# --- active connections -------------------------------------------------------
if ! skipped active; then
  start_server active
  preload
  for run in $(seq "$RUNS"); do
    echo "-- active: c=16 over 16 connections, c=1000 over 1000, run $run"
    get active-16 16 16
    get active-1000 1000 1000
  done
  stop_server
fi

# --- summary ------------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pts(label): return [r for r in rows if r.get("label") == label]
def med(label, key):
    v = [r[key] for r in pts(label) if key in r]
    return statistics.median(v) if v else None
def say_load(label):
    if not pts(label): return "-"
    return "%.0f Gets/s (p99 %.0f us, server CPU %.1f us/Get, client core %.2f)" % (
        med(label, "ops_per_sec"), med(label, "p99_us"),
        med(label, "server_cpu_us_per_op") or 0, med(label, "client_cpu_share") or 0)
print("\nmedians of %d run(s)" % max(len(pts("idle-tool")), len(pts("active-16")), 1))
if pts("idle-tool"):
    print("idle: %d of %d connections opened, %d still open at the end; server RSS "
          "%.1f -> %.1f MiB = %.2f KiB per connection; client RSS %.1f MiB" % (
          med("idle-tool", "opened"), med("idle-tool", "connections"),
          med("idle-tool", "still_open"), med("idle-tool", "server_rss_kib_before") / 1024,
          med("idle-tool", "server_rss_kib_end") / 1024, med("idle-tool", "kib_per_connection"),
          med("idle-tool", "client_rss_kib") / 1024))
    print("  Gets c=16 without: " + say_load("idle-baseline"))
    print("  Gets c=16 while held: " + say_load("idle-held"))
    b, h = med("idle-baseline", "ops_per_sec"), med("idle-held", "ops_per_sec")
    if b and h:
        print("  ratio held/without: %.2fx throughput, %.2fx p99" % (
            h / b, med("idle-held", "p99_us") / med("idle-baseline", "p99_us")))
if pts("active-16"):
    print("active: 16 connections: " + say_load("active-16"))
    print("        1000 connections: " + say_load("active-1000"))
    a, b = med("active-16", "ops_per_sec"), med("active-1000", "ops_per_sec")
    if a and b:
        runs = [r2["ops_per_sec"] / r1["ops_per_sec"]
                for r1, r2 in zip(pts("active-16"), pts("active-1000"))]
        print("  ratio 1000/16: %.2fx (median of medians; per run %s)" % (
            b / a, ", ".join("%.2f" % x for x in runs)))
EOF
