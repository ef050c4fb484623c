#!/usr/bin/env bash
# bench/cluster-compare.sh: durable Put and Get throughput of a 3-node Strata
# cluster (one range, RF 3) against a single strata-server and against a
# 3-member etcd cluster, in one run on 127.0.0.1 (issue 18). Each
# configuration is started, preloaded, loaded and stopped in turn; the
# table at the end has medians and the ratios cluster/single and
# cluster/etcd. See docs/benchmarks.md, "Cluster (issue 18)".
#
# Usage: bench/cluster-compare.sh [--seconds S] [--runs N] [--conc "1,16,64"]
#                                 [--keys N] [--quick] [--skip ITEMS] [--keep]
#   --seconds S   seconds measured per point (default 10, plus 1 s warmup)
#   --runs N      repeat every point N times; the table shows medians (3)
#   --conc LIST   concurrencies, comma or space separated (default 1,16,64)
#   --keys N      key space, preloaded before the points (default 100000)
#   --quick       1 s per point, 0.5 s warmup, 1 run, 10,000 keys: a smoke
#                 run (~1 min); flags after it override it
#   --skip ITEMS  comma list of single,cluster,etcd to leave out
#   --keep        keep the work dir (data dirs, logs, results.jsonl)
#   --wal_sync M  strata-server's --wal_sync for every Strata node (default
#                 fsync; "none" is NOT durable: only to split a replicated
#                 write's latency into fsyncs and the rest)
# Environment: BUILD_DIR (default <repo>/build; must have been configured
# with -DSTRATA_BUILD_BENCH=ON; strata-server, strata and strata-load are
# built there under nice, -j2), WORK_DIR (default a fresh
# /tmp/strata-cluster-compare.XXXXXX, removed at exit unless --keep).
#
# Configurations (defaults everywhere else; nothing is pinned to a CPU):
#   single   strata-server --wal_sync=fsync: a Put is fdatasynced (group
#            commit) before it is acknowledged.
#   cluster  one etcd member for coordination, `strata cluster init
#            --ranges=1 --replication_factor=3`, three strata-server nodes
#            (--cluster_etcd, --node_id, --advertise_address, --wal_sync=fsync).
#            Load goes to the range's primary (from `strata cluster status`):
#            a Put is acknowledged once every in-sync replica has fsynced it;
#            a Get is served by the primary under its lease (linearizable).
#   etcd     three etcd members (Debian etcd-server) on loopback, defaults
#            (raft log fsynced); load goes to the leader. Get = linearizable
#            Range (what the cluster's Get guarantees); the serializable
#            Range (the leader's local state, no quorum) is shown as well.
# The load generator is strata-load (bench/load/), one connection per
# outstanding request, 100-byte values. Not a test: never run by ctest or CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
COMMAND_LINE="bench/cluster-compare.sh $*"
POINT_SECONDS=10
WARMUP=1
RUNS=3
CONCS="1 16 64"
KEYS=100000
VALUE=100
SKIP=""
KEEP=0
WAL_SYNC=fsync

usage() { sed -n '2,41p' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) POINT_SECONDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --conc) CONCS=${2//,/ }; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --quick) POINT_SECONDS=1; WARMUP=0.5; RUNS=1; KEYS=10000; shift ;;
    --skip) SKIP=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --wal_sync) WAL_SYNC=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cluster-compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }
die() { echo "cluster-compare.sh: $*" >&2; exit 1; }

command -v etcd >/dev/null \
  || die "etcd not found: apt-get install etcd-server (scripts/lib.sh lists it)"
[[ -f "$BUILD_DIR/CMakeCache.txt" ]] \
  || die "$BUILD_DIR is not configured: source scripts/lib.sh; build_strata \"$BUILD_DIR\" -DSTRATA_BUILD_BENCH=ON"
nice -n 10 cmake --build "$BUILD_DIR" -j2 --target strata-server strata strata-load >/dev/null \
  || die "build failed: cmake --build $BUILD_DIR --target strata-server strata strata-load"
SERVER=$BUILD_DIR/server/strata-server
CLI=$BUILD_DIR/client/strata
LOAD=$BUILD_DIR/bench/strata-load

WORK=${WORK_DIR:-$(mktemp -d /tmp/strata-cluster-compare.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"

# --- processes: every one we start is stopped by its PID ---------------------
PIDS=()        # everything started, for the exit trap
CONFIG_PIDS=() # the servers of the configuration under load (CPU accounting)
stop() {  # PID...: SIGTERM, SIGKILL after 15 s
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$?
  [[ ${#PIDS[@]} -gt 0 ]] && stop "${PIDS[@]}"
  if [[ $KEEP == 1 ]]; then
    echo "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, stdout in NAME.out and
# stderr in NAME.err; sets STARTED_PID.
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}
tails() {  # NAME...: the end of each log, for a failure message
  local n
  for n in "$@"; do
    echo "--- $n (stderr, last 15 lines)" >&2
    tail -n 15 "$WORK/$n.err" >&2 2>/dev/null || true
  done
}
# free_ports N: bench/common/lib.sh
. "$(dirname "$0")/common/lib.sh"
bound_port() {  # NAME: waits for "strata-server listening on H:P", prints P
  local line
  for _ in $(seq 300); do
    line=$(grep -m1 '^strata-server listening on ' "$WORK/$1.out" 2>/dev/null || true)
    if [[ -n "$line" ]]; then echo "${line##*:}"; return 0; fi
    sleep 0.1
  done
  tails "$1"
  die "$1 did not start within 30 s"
}
etcd_healthy() {  # PORT...: waits until every member answers /health true
  local port
  for port in "$@"; do
    for _ in $(seq 300); do
      /usr/bin/python3 - "$port" <<'EOF' 2>/dev/null && continue 2
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1).read()
sys.exit(0 if b'"true"' in body else 1)
EOF
      sleep 0.2
    done
    return 1
  done
}
cpu_seconds() {  # PID...: user+system CPU seconds of the processes, summed
  local pid ticks=0 t
  for pid in "$@"; do
    t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    ticks=$((ticks + t))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

metrics_port() {  # NAME: the port of the last "strata-server metrics on H:P"
  local line
  line=$(grep '^strata-server metrics on ' "$WORK/$1.out" | tail -n 1 || true)
  echo "${line##*:}"
}
# wal_snapshot PORT...: one JSON list, per strata-server, of the WAL
# counters on its /metrics (fdatasyncs, their seconds, group commits and the
# write batches they carried); [] without ports.
wal_snapshot() {
  /usr/bin/python3 - "$@" <<'PYEOF'
import json, sys, urllib.request
names = {"strata_wal_syncs_total": "syncs",
         "strata_wal_sync_duration_seconds_sum": "sync_s",
         "strata_wal_writes_per_group_commit_count": "groups",
         "strata_wal_writes_per_group_commit_sum": "batches"}
out = []
for port in sys.argv[1:]:
    v = dict.fromkeys(names.values(), 0.0)
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=2).read().decode()
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in names:
                v[names[parts[0]]] += float(parts[1])
    except Exception:
        pass
    out.append(v)
print(json.dumps(out))
PYEOF
}
METRICS_PORTS=()  # /metrics of the strata-server under load (none for etcd)

# point LABEL PORT PROTOCOL OP CONC RUN [strata-load flags...]: one measured
# point against 127.0.0.1:PORT; appends its JSON line, with the CPU seconds
# of every process of the configuration (CONFIG_PIDS) over the whole
# strata-load run and the WAL counters' growth on each strata-server
# (METRICS_PORTS), to results.jsonl.
point() {
  local label=$1 port=$2 protocol=$3 op=$4 conc=$5 run=$6; shift 6
  local before after out json wal_before wal_after
  wal_before=$(wal_snapshot "${METRICS_PORTS[@]}")
  before=$(cpu_seconds "${CONFIG_PIDS[@]}")
  if ! out=$("$LOAD" --target="127.0.0.1:$port" --protocol="$protocol" \
      --op="$op" --concurrency="$conc" --duration="$POINT_SECONDS" \
      --warmup="$WARMUP" --keys="$KEYS" --value_size="$VALUE" \
      --label="$label" "$@" 2>&1); then
    echo "   $label $op c=$conc run $run FAILED:" >&2
    echo "$out" | tail -n 5 >&2
  fi
  echo "$out" >> "$WORK/load.log"
  after=$(cpu_seconds "${CONFIG_PIDS[@]}")
  wal_after=$(wal_snapshot "${METRICS_PORTS[@]}")
  json=$(echo "$out" | sed -n 's/^json: //p')
  [[ -n "$json" ]] || return 0
  json="${json%\}},\"run\":$run,\"config_cpu_s\":$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }'),\"window_s\":$(awk -v d="$POINT_SECONDS" -v w="$WARMUP" 'BEGIN { print d + w }')}"
  json=$(/usr/bin/python3 -c 'import json, sys
r, b, a = (json.loads(x) for x in sys.argv[1:4])
r["wal"] = [{k: y[k] - x[k] for k in x} for x, y in zip(b, a)]
print(json.dumps(r))' "$json" "$wal_before" "$wal_after")
  echo "$json" >> "$RESULTS"
  /usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("   %-18s %s c=%-3d run %d: %8.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %s" % (r["label"], r["op"], r["concurrency"], r["run"], r["ops_per_sec"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["errors"] or "none"))' "$json"
}
preload() {  # PORT PROTOCOL
  "$LOAD" --target="127.0.0.1:$1" --protocol="$2" --op=get --concurrency=64 \
    --duration=0.1 --warmup=0 --keys="$KEYS" --value_size="$VALUE" --preload \
    --label=preload | grep -E '^preload' | sed 's/^/   /' \
    || die "preload of $KEYS keys on 127.0.0.1:$1 failed (see $WORK/*.err)"
}

# --- conditions -----------------------------------------------------------------
fsync_probe() {  # median and p99 of a 100-byte write + fdatasync in WORK, ms
  /usr/bin/python3 - "$WORK/fsync-probe" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
lat = []
deadline = time.monotonic() + 3
while len(lat) < 200 and time.monotonic() < deadline:
    t = time.monotonic()
    os.write(fd, b"x" * 100)
    os.fdatasync(fd)
    lat.append((time.monotonic() - t) * 1e3)
os.close(fd)
os.unlink(sys.argv[1])
lat.sort()
print("%.2f ms p50, %.2f ms p99 over %d" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(lat)))
EOF
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== bench/cluster-compare.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "command: $COMMAND_LINE"
echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); shared and noisy, nothing pinned"
echo "load average at start: $LOAD_START (1, 5, 15 min)"
echo "disk: $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}'); fdatasync of 100 B: $(fsync_probe)"
[[ $WAL_SYNC == fsync ]] || echo "WARNING: --wal_sync=$WAL_SYNC: Strata's writes are NOT durable in this run"
echo "points: $POINT_SECONDS s (+$WARMUP s warmup) x $RUNS run(s), concurrency $CONCS, $KEYS keys, $VALUE B values; etcd $(etcd --version | awk 'NR==1 {print $3}')"
echo "work dir: $WORK"

# --- (a) single strata-server ---------------------------------------------------
if ! skipped single; then
  echo "== single: strata-server --wal_sync=$WAL_SYNC"
  start single "$SERVER" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/single" --wal_sync="$WAL_SYNC"
  CONFIG_PIDS=("$STARTED_PID")
  port=$(bound_port single)
  METRICS_PORTS=("$(metrics_port single)")
  preload "$port" strata
  for run in $(seq "$RUNS"); do
    for c in $CONCS; do
      point single "$port" strata put "$c" "$run"
      point single "$port" strata get "$c" "$run"
    done
  done
  stop "${CONFIG_PIDS[@]}"
  METRICS_PORTS=()
fi

# --- (b) 3-node Strata cluster, RF 3 ----------------------------------------------
# range_status: "PRIMARY IN_SYNC" of range 0 from `strata cluster status`.
range_status() {
  "$CLI" --timeout=2 cluster status --etcd="127.0.0.1:$coord_port" 2>/dev/null \
    | awk '/^ranges:/ { r = 1; next } r && $1 == "0" { print $5, $7 }'
}
if ! skipped cluster; then
  echo "== cluster: coordination etcd + 3 strata-server nodes, one range, RF 3"
  read -r coord_port coord_peer p1 p2 p3 <<<"$(free_ports 5)"
  declare -A node_port=([n1]=$p1 [n2]=$p2 [n3]=$p3)
  start coord-etcd etcd --name coord --data-dir "$WORK/cluster/etcd" \
    --listen-client-urls "http://127.0.0.1:$coord_port" \
    --advertise-client-urls "http://127.0.0.1:$coord_port" \
    --listen-peer-urls "http://127.0.0.1:$coord_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$coord_peer" \
    --initial-cluster "coord=http://127.0.0.1:$coord_peer" \
    --logger=zap --log-outputs=stderr --log-level=warn
  CONFIG_PIDS=("$STARTED_PID")
  etcd_healthy "$coord_port" || { tails coord-etcd; die "coordination etcd did not start"; }
  "$CLI" --timeout=5 cluster init --etcd="127.0.0.1:$coord_port" --ranges=1 \
    --replication_factor=3 \
    --nodes="n1=127.0.0.1:$p1,n2=127.0.0.1:$p2,n3=127.0.0.1:$p3" | sed 's/^/   /'
  for id in n1 n2 n3; do
    start "$id" "$SERVER" --listen="127.0.0.1:${node_port[$id]}" \
      --metrics_listen=127.0.0.1:0 --data_dir="$WORK/cluster/$id" \
      --cluster_etcd="127.0.0.1:$coord_port" --node_id="$id" \
      --advertise_address="127.0.0.1:${node_port[$id]}" --wal_sync="$WAL_SYNC"
    CONFIG_PIDS+=("$STARTED_PID")
  done
  # Ready: the map names a live primary with all three replicas in sync,
  # and that primary acknowledges a (replicated) Put.
  primary=""
  for _ in $(seq 120); do
    read -r primary in_sync <<<"$(range_status)" || true
    if [[ -n "${primary:-}" && "$primary" != *"(down)" && "${in_sync:-}" == *,*,* ]] \
        && "$CLI" --addr="127.0.0.1:${node_port[$primary]}" --timeout=2 \
             put cluster-compare-ready x >/dev/null 2>&1; then
      break
    fi
    primary=""
    sleep 0.5
  done
  [[ -n "$primary" ]] || { tails coord-etcd n1 n2 n3; die "the cluster had no serving primary within 60 s"; }
  port=${node_port[$primary]}
  echo "   primary $primary at 127.0.0.1:$port, in sync: $in_sync"
  # A replica exports no engine families (its DB is the replica sink's),
  # so only the primary's WAL is counted.
  METRICS_PORTS=("$(metrics_port "$primary")")
  preload "$port" strata
  for run in $(seq "$RUNS"); do
    for c in $CONCS; do
      for op in put get; do
        point cluster "$port" strata "$op" "$c" "$run"
        # A replica dropped from the in-sync set during a point would turn
        # RF 3 into 2 acknowledgements: record the set after every point.
        read -r now_primary now_in_sync <<<"$(range_status)" || true
        if [[ "${now_primary:-}" != "$primary" || "${now_in_sync:-}" != *,*,* ]]; then
          echo "   WARNING: after this point the primary is ${now_primary:-?}, in sync ${now_in_sync:-?}" >&2
          sed -i '$ s/}$/,"in_sync_changed":true}/' "$RESULTS"
        fi
      done
    done
  done
  stop "${CONFIG_PIDS[@]:1}"   # the nodes first, then their etcd
  stop "${CONFIG_PIDS[0]}"
  METRICS_PORTS=()
fi

# --- (c) 3-member etcd cluster ---------------------------------------------------
if ! skipped etcd; then
  echo "== etcd: 3 members, defaults"
  read -r c1 c2 c3 q1 q2 q3 <<<"$(free_ports 6)"
  cports=("$c1" "$c2" "$c3")
  qports=("$q1" "$q2" "$q3")
  initial="e1=http://127.0.0.1:$q1,e2=http://127.0.0.1:$q2,e3=http://127.0.0.1:$q3"
  CONFIG_PIDS=()
  for i in 0 1 2; do
    name="e$((i + 1))"
    start "etcd-$name" etcd --name "$name" --data-dir "$WORK/etcd/$name" \
      --listen-client-urls "http://127.0.0.1:${cports[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${qports[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${qports[$i]}" \
      --initial-cluster "$initial" --initial-cluster-state new \
      --initial-cluster-token strata-cluster-compare \
      --logger=zap --log-outputs=stderr --log-level=warn
    CONFIG_PIDS+=("$STARTED_PID")
  done
  etcd_healthy "${cports[@]}" || { tails etcd-e1 etcd-e2 etcd-e3; die "the etcd cluster did not become healthy"; }
  # The leader: the member whose status names itself as leader.
  leader=$(/usr/bin/python3 - "${cports[@]}" <<'EOF'
import json, sys, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    for port in sys.argv[1:]:
        try:
            req = urllib.request.Request("http://127.0.0.1:%s/v3/maintenance/status" % port,
                                         data=b"{}", headers={"Content-Type": "application/json"})
            s = json.loads(urllib.request.urlopen(req, timeout=1).read())
            if s.get("leader") and s["leader"] == s["header"]["member_id"]:
                print(port)
                sys.exit(0)
        except Exception:
            pass
    time.sleep(0.2)
sys.exit(1)
EOF
  ) || { tails etcd-e1 etcd-e2 etcd-e3; die "no etcd leader within 30 s"; }
  echo "   leader at 127.0.0.1:$leader"
  preload "$leader" etcd
  for run in $(seq "$RUNS"); do
    for c in $CONCS; do
      point etcd "$leader" etcd put "$c" "$run"
      point etcd "$leader" etcd get "$c" "$run" --etcd_serializable=false
      point etcd-serializable "$leader" etcd get "$c" "$run" --etcd_serializable=true
    done
  done
  stop "${CONFIG_PIDS[@]}"
fi
CONFIG_PIDS=()

# --- the table ---------------------------------------------------------------------
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (at start: $LOAD_START)"
/usr/bin/python3 - "$RESULTS" "$CONCS" <<'EOF'
import collections, json, statistics, sys

concs = [int(c) for c in sys.argv[2].split()]
pts = collections.defaultdict(lambda: collections.defaultdict(list))
warnings = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    k = (r["label"], r["op"], r["concurrency"])
    for f in ("ops_per_sec", "p50_us", "p99_us"):
        pts[k][f].append(r[f])
    errors = sum(r.get("errors", {}).values())
    pts[k]["errors"].append(errors)
    ops = r["ops_per_sec"] * r["window_s"]
    if ops > 0:
        pts[k]["cpu_us"].append(r["config_cpu_s"] * 1e6 / ops)
    if r.get("client_cpu_share") is not None:
        pts[k]["client"].append(r["client_cpu_share"])
    if r.get("in_sync_changed"):
        warnings.append("%s %s c=%d run %d: the in-sync set or primary changed" % (*k, r["run"]))
    if errors:
        warnings.append("%s %s c=%d run %d: %d errors %s" % (*k, r["run"], errors, r["errors"]))

def med(label, op, c, f="ops_per_sec"):
    v = pts.get((label, op, c), {}).get(f)
    return statistics.median(v) if v else None

def ops(v):
    return "-" if v is None else "{:,.0f}".format(v)

def lat(label, op, c):
    p50, p99 = med(label, op, c, "p50_us"), med(label, op, c, "p99_us")
    return "-" if p50 is None else "%.2f / %.1f" % (p50 / 1e3, p99 / 1e3)

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else "%.2fx" % (a / b)

runs = max((len(v["ops_per_sec"]) for v in pts.values()), default=0)
print()
print("median of %d run(s) per point; ops/s, and p50 / p99 latency in ms" % runs)
print()
print("| op | c | single ops/s | single p50 / p99 | cluster RF 3 ops/s | cluster p50 / p99 "
      "| etcd x3 ops/s | etcd p50 / p99 | cluster/single | cluster/etcd |")
print("|---|---|---|---|---|---|---|---|---|---|")
for op, name in (("put", "Put"), ("get", "Get")):
    for c in concs:
        s, k, e = med("single", op, c), med("cluster", op, c), med("etcd", op, c)
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, c, ops(s), lat("single", op, c), ops(k), lat("cluster", op, c),
            ops(e), lat("etcd", op, c), ratio(k, s), ratio(k, e)))
if any(("etcd-serializable", "get", c) in pts for c in concs):
    print()
    print("etcd Get above is a linearizable Range (ReadIndex: a quorum round per batch of "
          "reads), the guarantee the cluster's Get gives; etcd's serializable Range (the "
          "leader's local state) for reference:")
    print()
    print("| c | etcd serializable ops/s | p50 / p99 | cluster Get / it |")
    print("|---|---|---|---|")
    for c in concs:
        v = med("etcd-serializable", "get", c)
        print("| %d | %s | %s | %s |" % (c, ops(v), lat("etcd-serializable", "get", c),
                                          ratio(med("cluster", "get", c), v)))
print()
print("CPU per operation in us, all processes of the configuration together (single: 1 "
      "server; cluster: 3 nodes + the coordination etcd; etcd: 3 members), over the "
      "warmup and the measured window; 2 cores bound throughput at about 2e6 / this; in "
      "brackets the load generator's busy share of one core (it runs on the same 2 cores):")
print()
print("| op | c | single | cluster | etcd |")
print("|---|---|---|---|---|")
for op in ("put", "get"):
    for c in concs:
        cells = []
        for label in ("single", "cluster", "etcd"):
            v, share = med(label, op, c, "cpu_us"), med(label, op, c, "client")
            cells.append(("-" if v is None else "%.0f" % v)
                         + ("" if share is None else " (%.2f)" % share))
        print("| %s | %d | %s |" % (op, c, " | ".join(cells)))
# WAL work per Put, from the server's /metrics over each Put point (the
# warmup included, as for CPU).
wal = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["op"] != "put" or not r.get("wal"):
        continue
    n, ops_in_window = r["wal"][0], r["ops_per_sec"] * r["window_s"]
    if n["syncs"] > 0 and ops_in_window > 0:
        wal[(r["label"], r["concurrency"])].append(
            (n["syncs"] / ops_in_window, n["sync_s"] * 1e3 / n["syncs"],
             n["batches"] / max(n["groups"], 1)))
if wal:
    print()
    print("WAL of the node under load per Put (its /metrics, medians): fdatasyncs per "
          "Put, mean fdatasync in ms, Puts per group commit (replicas export no engine "
          "metrics)")
    print()
    print("| c | single | cluster primary |")
    print("|---|---|---|")
    for c in concs:
        cells = []
        for label in ("single", "cluster"):
            v = wal.get((label, c))
            cells.append("-" if not v else "%.2f syncs, %.2f ms, %.1f per group" % tuple(
                statistics.median(x[i] for x in v) for i in range(3)))
        print("| %d | %s |" % (c, " | ".join(cells)))
s1, k1 = med("single", "put", 1, "p50_us"), med("cluster", "put", 1, "p50_us")
if s1 is not None and k1 is not None:
    print()
    print("replicated write cost at c=1: cluster Put p50 %.2f ms - single Put p50 %.2f ms = "
          "%.2f ms" % (k1 / 1e3, s1 / 1e3, (k1 - s1) / 1e3))
print()
if warnings:
    print("WARNINGS:")
    for w in warnings:
        print("- " + w)
else:
    print("no errors" + ("; the cluster kept its primary and all three replicas in sync "
                         "throughout" if any(k[0] == "cluster" for k in pts) else ""))
EOF
