#!/usr/bin/env bash
# Counters side by side: strata.v1.KV/Increment (+1, durable) from
# strata-load --op=incr against Redis INCR from redis-benchmark, Redis with
# appendonly yes + appendfsync always (every write fsynced, as Strata's).
# Both servers on CPU 0, the load on CPU 1, runs interleaved, 3 of each.
#   bench/incr-compare.sh [BUILD_DIR]   (default build/; needs redis-server
#                                        and redis-tools from Debian)
set -u
B=$(realpath "${1:-build}")
. "$(dirname "$0")/common/lib.sh"
D=$(mktemp -d /tmp/strata-incr-compare.XXXXXX)
RPORT=$(free_ports 1)
taskset -c 0 redis-server --port $RPORT --bind 127.0.0.1 --dir $D --appendonly yes --appendfsync always --save '' > $D/redis.log 2>&1 &
RP=$!
taskset -c 0 $B/server/strata-server --data_dir=$D/strata --listen=127.0.0.1:0 --metrics_listen= > $D/strata.out 2> $D/strata.err &
SP=$!
trap 'kill $RP $SP 2>/dev/null; wait 2>/dev/null; rm -rf $D' EXIT
STRATA=$(wait_line $D/strata.out "strata-server listening on ") || exit 1
for _ in $(seq 300); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.1; done
j() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().split('json: ')[1]); print(f\"{d['ops_per_sec']:.0f} p50={d['p50_us']/1000:.2f}ms p99={d['p99_us']/1000:.2f}ms err={d['errors']}\")"; }
for c in 1 16; do
for run in 1 2 3; do
  echo "incr c=$c run $run strata: $(taskset -c 1 $B/bench/strata-load --target=$STRATA --op=incr --keys=10000 --concurrency=$c --duration=5 --warmup=1 2>&1 | j)"
  echo "incr c=$c run $run redis:  $(taskset -c 1 redis-benchmark -p $RPORT -t incr -c $c -n $((c==1 ? 3000 : 30000)) -r 10000 -q 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -1)"
done
done
