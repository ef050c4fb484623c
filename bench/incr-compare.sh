#!/usr/bin/env bash
# Counters side by side: strata.v1.KV/Increment (+1, durable) from
# strata-load --op=incr against Redis INCR from redis-benchmark, Redis with
# appendonly yes + appendfsync always (every write fsynced, as Strata's).
# Both servers on CPU 0, the load on CPU 1, runs interleaved, 3 of each.
#   bench/incr-compare.sh [BUILD_DIR]   (default build/; needs redis-server
#                                        and redis-tools from Debian)
set -u
B=$(realpath "${1:-build}")
D=/tmp/incrb; rm -rf $D; mkdir -p $D
taskset -c 0 redis-server --port 6390 --bind 127.0.0.1 --dir $D --appendonly yes --appendfsync always --save '' > $D/redis.log 2>&1 &
RP=$!
taskset -c 0 $B/server/strata-server --data_dir=$D/strata --listen=127.0.0.1:50992 --metrics_listen=127.0.0.1:0 > $D/strata.log 2>&1 &
SP=$!
trap 'kill $RP $SP 2>/dev/null; wait 2>/dev/null' EXIT
sleep 2
j() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().split('json: ')[1]); print(f\"{d['ops_per_sec']:.0f} p50={d['p50_us']/1000:.2f}ms p99={d['p99_us']/1000:.2f}ms err={d['errors']}\")"; }
for c in 1 16; do
for run in 1 2 3; do
  echo "incr c=$c run $run strata: $(taskset -c 1 $B/bench/strata-load --target=127.0.0.1:50992 --op=incr --keys=10000 --concurrency=$c --duration=5 --warmup=1 2>&1 | j)"
  echo "incr c=$c run $run redis:  $(taskset -c 1 redis-benchmark -p 6390 -t incr -c $c -n $((c==1 ? 3000 : 30000)) -r 10000 -q 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -1)"
done
done
