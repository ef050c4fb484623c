#!/usr/bin/env bash
# bench/server-compare.sh: strata-server next to a do-nothing gRPC server
# (bench/noop-server), etcd and Redis, each pinned to CPU 0 with the load
# generator on CPU 1, at concurrency 1, 16 and 64 (100-byte values, 100k
# keys). See docs/benchmarks.md.
#
# Usage: bench/server-compare.sh [--duration S] [--runs R] [--concurrency "1 16 64"]
#                                [--keys N] [--skip ITEMS]
#   --duration S   seconds measured per point (default 10, plus 1 s warmup)
#   --runs R       repeat each point R times; tables show medians (default 1)
#   --skip ITEMS   comma list of noop,strata,coalesce,etcd,redis,scaling to
#                  leave out
# Environment: BUILD_DIR (default <repo>/build-bench), WORK_DIR (data dirs
# and logs; default a fresh /tmp/strata-server-compare.XXXXXX, disk-backed),
# SERVER_CPU (0), CLIENT_CPU (1).
#
# Servers:
#   strata   strata-server --cq_threads=1, default --wal_sync=fsync: a Put is
#            fdatasynced (group commit) before it is acknowledged.
#   noop     bench/noop-server (1 completion queue): gRPC's own ceiling.
#   etcd     Debian etcd-server, one member on loopback, default durability
#            (fsync per raft batch); driven by strata-load --protocol=etcd
#            (Put and serializable Range) because Debian ships no etcd
#            benchmark tool.
#   redis    Debian redis-server with its default persistence (RDB
#            snapshots only) and with appendonly yes + appendfsync always;
#            driven by redis-benchmark (SET/GET -d 100 -c N -r 100000).
# Installs etcd-server, redis-server and redis-tools from Debian when they
# are missing (root). Every server it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=10
WARMUP=1
RUNS=1
CONCS="1 16 64"
KEYS=100000
VALUE=100
SKIP=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --concurrency) CONCS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --skip) SKIP=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "server-compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }

# --- packages and build -----------------------------------------------------
need=()
skipped etcd || dpkg -s etcd-server >/dev/null 2>&1 || need+=(etcd-server)
if ! skipped redis; then
  dpkg -s redis-server >/dev/null 2>&1 || need+=(redis-server)
  dpkg -s redis-tools >/dev/null 2>&1 || need+=(redis-tools)
fi
if [[ ${#need[@]} -gt 0 ]]; then
  echo "server-compare.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null \
    || echo "server-compare.sh: could not install ${need[*]}; those targets are skipped"
fi
command -v etcd >/dev/null || { echo "note: etcd not installed: skipped"; SKIP+=",etcd"; }
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null \
  || { echo "note: redis not installed: skipped"; SKIP+=",redis"; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_BUILD_TESTS=OFF "${launcher[@]}" >/dev/null
nice -n 10 ninja -C "$BUILD_DIR" -j2 strata-server strata-load noop-server >/dev/null
LOAD=$BUILD_DIR/bench/strata-load
NOOP=$BUILD_DIR/bench/noop-server
STRATA=$BUILD_DIR/server/strata-server

# 10,000 idle connections need that many descriptors on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=${WORK_DIR:-$(mktemp -d /tmp/strata-server-compare.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
echo "work dir: $WORK (logs, data dirs, results.jsonl)"

# --- process handling: every server we start is stopped by its PID ---------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD pinned to SERVER_CPU; sets SERVER_PID.
start() {
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}
# stop PID: SIGTERM, then SIGKILL after 15 s.
stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# bound_port NAME: waits for "... listening on HOST:PORT" and prints PORT.
bound_port() {
  for _ in $(seq 100); do
    local line
    line=$(grep -m1 'listening on' "$WORK/$1.out" 2>/dev/null || true)
    if [[ -n "$line" ]]; then echo "${line##*:}"; return 0; fi
    sleep 0.1
  done
  echo "server-compare.sh: $1 did not start:" >&2
  cat "$WORK/$1.err" >&2
  return 1
}
# free_ports N: bench/common/lib.sh
. "$(dirname "$0")/common/lib.sh"

# load LABEL PORT PROTOCOL OP CONCURRENCY [strata-load flags...]
# (the server under test is $pid: its CPU per operation is reported)
load() {
  local label=$1 port=$2 protocol=$3 op=$4 conc=$5; shift 5
  for run in $(seq "$RUNS"); do
    echo "-- $label $op c=$conc run $run"
    taskset -c "$CLIENT_CPU" "$LOAD" --target="127.0.0.1:$port" \
      --protocol="$protocol" --op="$op" --concurrency="$conc" \
      --duration="$DURATION" --warmup="$WARMUP" --keys="$KEYS" \
      --value_size="$VALUE" --label="$label" --server_pid="$pid" "$@" \
      | tee -a "$WORK/load.log" | grep '^json: ' | sed 's/^json: //' >> "$RESULTS" \
      || echo "   (failed; see $WORK/load.log)"
  done
}
preload() {  # PORT PROTOCOL
  taskset -c "$CLIENT_CPU" "$LOAD" --target="127.0.0.1:$1" --protocol="$2" \
    --op=get --concurrency=64 --duration=0.1 --warmup=0 --keys="$KEYS" \
    --value_size="$VALUE" --preload --label=preload | grep -E '^preload' || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"

# --- noop-server --------------------------------------------------------------
if ! skipped noop; then
  start noop "$NOOP" --listen=127.0.0.1:0 --cq_threads=1
  pid=$SERVER_PID
  port=$(bound_port noop)
  for c in $CONCS; do
    load noop "$port" strata get "$c"
    load noop "$port" strata put "$c"
  done
  stop "$pid"
fi

# --- strata-server ------------------------------------------------------------
if ! skipped strata; then
  start strata "$STRATA" --listen=127.0.0.1:0 --metrics_listen= --data_dir="$WORK/strata-data" \
    --cq_threads=1 --wal_sync=fsync
  pid=$SERVER_PID
  port=$(bound_port strata)
  preload "$port" strata
  for c in $CONCS; do
    load strata "$port" strata put "$c"
    load strata "$port" strata get "$c"
  done
  # Hot key: every Get reads key 0. Its block is cached, so every Get is
  # answered inline from memory and read coalescing has nothing to save.
  load strata-hot1 "$port" strata get 64 --hot_keys=1
  if ! skipped scaling; then
    # 10,000 idle connections held open while 16 clients run Gets; the
    # server's RSS growth per connection is in the JSON line.
    # Once only: the server keeps the memory of closed connections for
    # reuse, so a second round would measure from a higher baseline.
    RUNS_SAVED=$RUNS; RUNS=1
    load strata-idle10k "$port" strata get 16 --idle_connections=10000
    RUNS=$RUNS_SAVED
    # Throughput with 1,000 connections, one outstanding Get each.
    load strata-conn1000 "$port" strata get 1000 --channels=1000
  fi
  stop "$pid"
fi

# --- read coalescing ----------------------------------------------------------
# Every Get must read from disk (--block_cache_bytes=0; a small memtable so
# the preload lands in SSTables): the cold-cache worst case, where a burst
# on one key is N disk lookups without coalescing and about one per pool
# slot with it. Same data, server restarted with --coalesce_gets off.
if ! skipped strata && ! skipped coalesce; then
  for mode in true false; do
    start "strata-cold-$mode" "$STRATA" --listen=127.0.0.1:0 --metrics_listen= \
      --data_dir="$WORK/strata-cold-data" --cq_threads=1 --wal_sync=fsync \
      --block_cache_bytes=0 --memtable_bytes=1048576 --coalesce_gets="$mode"
    pid=$SERVER_PID
    port=$(bound_port "strata-cold-$mode")
    [[ $mode == true ]] && preload "$port" strata
    load "strata-cold-coalesce-$mode" "$port" strata get 64 --hot_keys=1
    load "strata-cold-uniform-coalesce-$mode" "$port" strata get 64
    stop "$pid"
  done
fi

# --- etcd ---------------------------------------------------------------------
if ! skipped etcd; then
  read -r cport pport <<<"$(free_ports 2)"
  start etcd etcd --name bench --data-dir "$WORK/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" --log-level warn
  pid=$SERVER_PID
  for _ in $(seq 100); do
    /usr/bin/python3 - "$cport" <<'EOF' 2>/dev/null && break
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1).read()
sys.exit(0 if b'"true"' in body else 1)
EOF
    sleep 0.2
  done
  preload "$cport" etcd
  for c in $CONCS; do
    load etcd "$cport" etcd put "$c"
    load etcd "$cport" etcd get "$c" --etcd_serializable=true
  done
  stop "$pid"
fi

# --- redis --------------------------------------------------------------------
# redis_point LABEL PORT TEST CONC: one redis-benchmark run of about
# DURATION seconds (the request count comes from a short calibration run).
redis_point() {
  local label=$1 port=$2 test=$3 c=$4
  local cal=$(( c * 100 > 2000 ? c * 100 : 2000 ))
  local rps
  rps=$(taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" \
        -d "$VALUE" -c "$c" -r "$KEYS" -n "$cal" --csv | awk -F'"' 'NR==2 {print int($4)}')
  local n=$(( rps * DURATION ))
  (( n < 2000 )) && n=2000
  for run in $(seq "$RUNS"); do
    echo "-- $label $test c=$c run $run ($n requests)"
    taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" \
      -d "$VALUE" -c "$c" -r "$KEYS" -n "$n" --csv | tee -a "$WORK/redis.log" \
      | awk -F'"' -v label="$label" -v c="$c" 'NR==2 {
          op = ($2 == "SET") ? "put" : "get";
          printf("{\"tool\":\"redis-benchmark\",\"label\":\"%s\",\"op\":\"%s\",\"concurrency\":%d,\"ops_per_sec\":%s,\"p50_us\":%.1f,\"p99_us\":%.1f,\"errors\":{}}\n",
                 label, op, c, $4, $10 * 1000, $14 * 1000) }' >> "$RESULTS"
  done
}
redis_server() {  # LABEL EXTRA-ARGS...
  local label=$1; shift
  local port; port=$(free_ports 1)
  mkdir -p "$WORK/$label-data"
  start "$label" redis-server --port "$port" --bind 127.0.0.1 \
    --dir "$WORK/$label-data" --daemonize no "$@"
  local rpid=$SERVER_PID
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  for c in $CONCS; do
    redis_point "$label" "$port" set "$c"
    redis_point "$label" "$port" get "$c"
  done
  stop "$rpid"
}
if ! skipped redis; then
  redis_server redis-default
  redis_server redis-aof-always --appendonly yes --appendfsync always
fi

# --- tables -------------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" "$CONCS" <<'EOF'
import collections, json, statistics, sys

concs = [int(c) for c in sys.argv[2].split()]
pts = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["label"] == "preload":
        continue
    k = (r["label"], r["op"], r["concurrency"])
    pts[k]["ops"].append(r["ops_per_sec"])
    pts[k]["p99"].append(r["p99_us"])
    pts[k]["p50"].append(r["p50_us"])
    pts[k]["errors"].append(sum(r.get("errors", {}).values()))
    if r.get("server_cpu_us_per_op"):
        pts[k]["cpu"].append(r["server_cpu_us_per_op"])
    if r.get("client_cpu_share") is not None:
        pts[k]["client"].append(r["client_cpu_share"])
    for extra in ("server_rss_kib_before_idle", "server_rss_kib_with_idle", "idle_ready"):
        if extra in r:
            pts[k][extra].append(r[extra])

def med(label, op, c, key="ops"):
    v = pts.get((label, op, c), {}).get(key)
    return statistics.median(v) if v else None

runs = max((len(v["ops"]) for v in pts.values()), default=0)
print()
print("median of %d run(s) per point; ops/s and p99 latency in us" % runs)
print()
hdr = "| server | op |" + "".join(" c=%d ops/s | c=%d p99 |" % (c, c) for c in concs)
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
labels = ["noop", "strata", "etcd", "redis-default", "redis-aof-always"]
for label in labels:
    for op in ("put", "get"):
        if not any((label, op, c) in pts for c in concs):
            continue
        cells = []
        for c in concs:
            o, p = med(label, op, c), med(label, op, c, "p99")
            cells.append("-" if o is None else "%.0f" % o)
            cells.append("-" if p is None else "%.0f" % p)
        name = {"put": "Put", "get": "Get"}[op]
        if label == "etcd" and op == "get":
            name = "Range (serializable)"
        if label.startswith("redis"):
            name = "SET" if op == "put" else "GET"
        print("| %s | %s | %s |" % (label, name, " | ".join(cells)))

print()
print("server CPU per operation in us (whole server process; on its one core this bounds "
      "throughput at about 1e6/cpu ops/s), and in brackets the load generator's busy share "
      "of its core (near 1.00 = the client, not the server, was the limit)")
print()
hdr = "| server | op |" + "".join(" c=%d |" % c for c in concs)
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for label in ("noop", "strata", "etcd"):
    for op in ("put", "get"):
        if not any((label, op, c) in pts for c in concs):
            continue
        cells = [("-" if med(label, op, c, "cpu") is None else "%.1f" % med(label, op, c, "cpu"))
                 + ("" if med(label, op, c, "client") is None
                    else " (%.2f)" % med(label, op, c, "client"))
                 for c in concs]
        print("| %s | %s | %s |" % (label, op, " | ".join(cells)))

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def verdict(name, value, goal, higher=True):
    if value is None:
        print("- %s: not measured" % name)
        return
    ok = value >= goal if higher else value <= goal
    print("- %s: %.2f (target %s %.2f) -> %s" % (name, value, ">=" if higher else "<=", goal,
                                                   "MET" if ok else "NOT MET"))

print()
print("targets (issue 6):")
verdict("durable Put c=16, strata/etcd", ratio(med("strata", "put", 16), med("etcd", "put", 16)), 3.0)
verdict("durable Put c=16, strata/redis appendfsync always",
        ratio(med("strata", "put", 16), med("redis-aof-always", "put", 16)), 1.0)
verdict("durable Put c=64, strata/noop", ratio(med("strata", "put", 64), med("noop", "put", 64)), 0.8)
verdict("Get c=16, strata/noop", ratio(med("strata", "get", 16), med("noop", "get", 16)), 0.85)
verdict("Get c=16, strata/etcd serializable Range",
        ratio(med("strata", "get", 16), med("etcd", "get", 16)), 2.0)
for c in concs:
    for op in ("put", "get"):
        verdict("p99 %s c=%d, strata/noop" % (op, c),
                ratio(med("strata", op, c, "p99"), med("noop", op, c, "p99")), 1.3, higher=False)
hot = med("strata-hot1", "get", 64)
if hot is not None:
    print("- hot key, block cached (all Gets on one key, c=64): %.0f ops/s vs %s uniform = "
          "%.2fx (answered inline from memory; coalescing not involved)" % (
              hot, "%.0f" % med("strata", "get", 64) if med("strata", "get", 64) else "-",
              ratio(hot, med("strata", "get", 64)) or 0))
on, off = med("strata-cold-coalesce-true", "get", 64), med("strata-cold-coalesce-false", "get", 64)
if on is not None and off is not None:
    print("- read coalescing, hot key on disk (--block_cache_bytes=0, c=64): %.0f ops/s with "
          "vs %.0f without = %.2fx; p99 %.0f vs %.0f us; server CPU/Get %s vs %s us; "
          "uniform keys (nothing to coalesce) %s vs %s ops/s" % (
              on, off, on / off, med("strata-cold-coalesce-true", "get", 64, "p99"),
              med("strata-cold-coalesce-false", "get", 64, "p99"),
              "%.1f" % (med("strata-cold-coalesce-true", "get", 64, "cpu") or 0),
              "%.1f" % (med("strata-cold-coalesce-false", "get", 64, "cpu") or 0),
              "%.0f" % (med("strata-cold-uniform-coalesce-true", "get", 64) or 0),
              "%.0f" % (med("strata-cold-uniform-coalesce-false", "get", 64) or 0)))
idle = pts.get(("strata-idle10k", "get", 16))
if idle and idle.get("server_rss_kib_with_idle"):
    before = statistics.median(idle["server_rss_kib_before_idle"])
    after = statistics.median(idle["server_rss_kib_with_idle"])
    ready = statistics.median(idle["idle_ready"])
    per = (after - before) * 1024 / ready if ready else 0
    print("- 10,000 idle connections: %d connected; server RSS %.1f -> %.1f MiB = %.1f KiB per "
          "connection; Get c=16 meanwhile %.0f ops/s (%.2fx of without)" % (
              ready, before / 1024, after / 1024, per / 1024, med("strata-idle10k", "get", 16),
              ratio(med("strata-idle10k", "get", 16), med("strata", "get", 16)) or 0))
verdict("Get over 1,000 connections vs 16 (strata)",
        ratio(med("strata-conn1000", "get", 1000), med("strata", "get", 16)), 0.7)
EOF
echo "raw results: $RESULTS"
