#!/usr/bin/env bash
# Expiry lag: how long after its deadline a TTL key's DELETE commits.
# Loads a server with TTL puts (strata-load --op=put --ttl_ms), lets every
# key expire, and reads the server's own histogram strata_expiry_lag_seconds
# (docs/metrics.md): quantiles are the bucket bounds they fall in.
#   bench/expiry-lag.sh [BUILD_DIR] [KEYS]   (default build/, 100000 keys)
# Runs the server on CPU 0 and the load on CPU 1, default flags
# (--expiry_interval=100ms), 1 s TTL, then waits for the backlog to drain.
set -u
B=$(realpath "${1:-build}")
KEYS="${2:-100000}"
. "$(dirname "$0")/common/lib.sh"
D=$(mktemp -d /tmp/strata-expiry-lag.XXXXXX)
taskset -c 0 "$B/server/strata-server" --data_dir=$D/strata --listen=127.0.0.1:0 \
  --metrics_listen=127.0.0.1:0 > $D/strata.out 2> $D/strata.err &
SP=$!
trap 'kill $SP 2>/dev/null; wait 2>/dev/null; rm -rf $D' EXIT
STRATA=$(wait_line $D/strata.out "strata-server listening on ") || exit 1
METRICS=$(wait_line $D/strata.out "strata-server metrics on ") || exit 1
taskset -c 1 "$B/bench/strata-load" --target=$STRATA --op=put --keys="$KEYS" \
  --ttl_ms=1000 --concurrency=16 --duration=5 --warmup=0 2>&1 | grep -o 'json: .*' | cut -c7- > $D/load.json
# Every key's deadline is at most 1 s after the load ends; wait (bounded:
# 30 s) until the expirer has processed every TTL put (strata_ttl_keys 0).
# Reads hide an expired key at once, so a scan cannot tell.
for _ in $(seq 300); do
  left=$(curl -fs http://$METRICS/metrics | awk '/^strata_ttl_keys /{print $2}')
  [ "$left" = 0 ] && break; sleep 0.1
done
curl -fs http://$METRICS/metrics > $D/metrics.txt
/usr/bin/python3 - "$D/metrics.txt" "$D/load.json" <<'PY'
import json, sys
buckets, count = [], 0
for line in open(sys.argv[1]):
    if line.startswith('strata_expiry_lag_seconds_bucket'):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float('inf') if le == '+Inf' else float(le), float(line.split()[-1])))
    elif line.startswith('strata_expiry_lag_seconds_count'):
        count = float(line.split()[-1])
load = json.load(open(sys.argv[2]))
def q(p):
    for le, c in buckets:
        if c >= p * count: return le
print(f"puts {load['ops']} ({load['ops_per_sec']:.0f}/s) with a 1 s TTL; keys expired {count:.0f}")
print(f"expiry lag (bucket upper bounds): p50 <= {q(.5)*1000:g} ms, p99 <= {q(.99)*1000:g} ms, max <= {q(1.0)*1000:g} ms")
PY
