#!/usr/bin/env bash
# Writes with a time to live side by side (issue 20, item 5): strata.v1.KV/Put
# with ttl_ms (strata-load --op=put --ttl_ms=60000) and without, against
# Redis SET key value EX 60 and plain SET, Redis with appendonly yes +
# appendfsync always (every write fsynced, as Strata's). 10,000 keys,
# 100-byte values. Both servers on CPU 0, the load on CPU 1, runs
# interleaved, medians of R. See docs/benchmarks.md, "Leases and TTLs".
#   bench/ttl-compare.sh [BUILD_DIR] [RUNS]   (default build/, 3; needs
#                                              redis-server and redis-tools)
set -euo pipefail
B=$(realpath "${1:-build}")
RUNS=${2:-3}
D=$(mktemp -d /tmp/strata-ttl-compare.XXXXXX)
. "$(dirname "$0")/common/lib.sh"
RPORT=$(free_ports 1)
taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$D" \
  --appendonly yes --appendfsync always --save '' > "$D/redis.log" 2>&1 &
RP=$!
taskset -c 0 "$B/server/strata-server" --data_dir="$D/strata" \
  --listen=127.0.0.1:0 --metrics_listen= > "$D/strata.out" 2> "$D/strata.err" &
SP=$!
trap 'kill $RP $SP 2>/dev/null || true; wait $RP $SP 2>/dev/null || true' EXIT
SPORT=""
for _ in $(seq 300); do
  SPORT=$(grep -m1 -o 'listening on .*' "$D/strata.out" 2>/dev/null | sed 's/.*://' || true)
  [[ -n "$SPORT" ]] && break
  sleep 0.1
done
for _ in $(seq 300); do
  redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -n "$SPORT" ]] || { echo "strata-server did not start"; cat "$D/strata.err"; exit 1; }

: > "$D/results.txt"
strata() {  # LABEL C TTL_MS
  taskset -c 1 "$B/bench/strata-load" --target="127.0.0.1:$SPORT" --op=put \
    --keys=10000 --concurrency="$2" --duration=5 --warmup=1 --ttl_ms="$3" 2>&1 \
    | grep -o 'json: .*' | cut -c7- \
    | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print('$1', $2, d['ops_per_sec'], d['p99_us'])" \
    >> "$D/results.txt"
}
redis() {  # LABEL C REQUESTS ARGS...
  local label=$1 c=$2 n=$3; shift 3
  taskset -c 1 redis-benchmark -p "$RPORT" -c "$c" -n "$n" -r 10000 --csv "$@" \
    | awk -F'"' -v l="$label" -v c="$c" 'NR==2 {print l, c, $4, $14 * 1000}' \
    >> "$D/results.txt"
}
value=$(head -c 100 /dev/zero | tr '\0' v)
for c in 1 16; do
  n=$(( c == 1 ? 3000 : 30000 ))
  for run in $(seq "$RUNS"); do
    echo "-- c=$c run $run"
    strata strata-put-ttl "$c" 60000
    strata strata-put "$c" 0
    redis redis-set-ex "$c" "$n" SET "key:__rand_int__" "$value" EX 60
    redis redis-set "$c" "$n" SET "key:__rand_int__" "$value"
  done
done
/usr/bin/python3 - "$D/results.txt" <<'EOF'
import collections, statistics, sys
pts = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, c, ops, p99 = line.split()
    pts[(label, int(c))].append((float(ops), float(p99)))
def med(label, c, i):
    v = [p[i] for p in pts.get((label, c), [])]
    return statistics.median(v) if v else float("nan")
print("\nmedians; ops/s (p99 us); durable writes on both")
print("| c | Strata Put ttl_ms=60000 | Strata Put | Redis SET EX 60 | Redis SET | TTL Put / SET EX |")
print("|---|---|---|---|---|---|")
for c in (1, 16):
    row = [c] + ["%.0f (%.0f)" % (med(l, c, 0), med(l, c, 1))
                 for l in ("strata-put-ttl", "strata-put", "redis-set-ex", "redis-set")]
    row.append("%.2fx" % (med("strata-put-ttl", c, 0) / med("redis-set-ex", c, 0)))
    print("| " + " | ".join(str(x) for x in row) + " |")
EOF
