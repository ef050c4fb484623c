#!/usr/bin/env bash
# Transactions side by side: strata.v1.KV/Txn against etcd's KV/Txn (the same
# guarded put: if the key's mod revision < 2^62 put it, else get it), then
# strata's Commit at 0 %, 1 % and 20 % forced conflicts. Both servers on CPU 0,
# strata-load on CPU 1, runs interleaved, 3 of each; prints one line per run.
#   bench/txn-compare.sh [BUILD_DIR]     (default build/; needs etcd-server)
set -u
B=$(realpath "${1:-build}")
. "$(dirname "$0")/common/lib.sh"
D=$(mktemp -d /tmp/strata-txn-compare.XXXXXX)
read -r EPORT PPORT <<<"$(free_ports 2)"
taskset -c 0 etcd --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$EPORT --advertise-client-urls http://127.0.0.1:$EPORT --listen-peer-urls http://127.0.0.1:$PPORT --initial-advertise-peer-urls http://127.0.0.1:$PPORT --initial-cluster default=http://127.0.0.1:$PPORT > $D/etcd.log 2>&1 &
EP=$!
taskset -c 0 $B/server/strata-server --data_dir=$D/strata --listen=127.0.0.1:0 --metrics_listen= > $D/strata.out 2> $D/strata.err &
SP=$!
trap 'kill $EP $SP 2>/dev/null; wait 2>/dev/null; rm -rf $D' EXIT
STRATA=$(wait_line $D/strata.out "strata-server listening on ") || exit 1
for _ in $(seq 300); do curl -fs http://127.0.0.1:$EPORT/health >/dev/null && break; sleep 0.1; done
L="taskset -c 1 $B/bench/strata-load"
j() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().split('json: ')[1]); print(f\"{d['ops_per_sec']:.0f} p50={d['p50_us']/1000:.2f}ms p99={d['p99_us']/1000:.2f}ms err={d['errors']}\")"; }
$L --target=$STRATA --protocol=strata --op=put --preload --keys=10000 --duration=1 --warmup=0 >/dev/null 2>&1
$L --target=127.0.0.1:$EPORT --protocol=etcd --op=put --preload --keys=10000 --duration=1 --warmup=0 >/dev/null 2>&1
for c in 1 16; do
for run in 1 2 3; do
  echo "txn c=$c run $run strata: $($L --target=$STRATA --protocol=strata --op=txn --keys=10000 --concurrency=$c --duration=5 --warmup=1 2>&1 | j)"
  echo "txn c=$c run $run etcd:   $($L --target=127.0.0.1:$EPORT --protocol=etcd --op=txn --keys=10000 --concurrency=$c --duration=5 --warmup=1 2>&1 | j)"
done
done
for r in 0 0.01 0.2; do
for run in 1 2 3; do
  echo "commit c=16 conflict=$r run $run: $($L --target=$STRATA --op=commit --conflict_rate=$r --keys=10000 --concurrency=16 --duration=5 --warmup=1 2>&1 | j)"
done
done
