#!/usr/bin/env bash
# Watch side by side (issue 20, item 5): strata-watch-bench against
# strata-server (strata.v1.KV/Watch, one server-streaming call per watcher)
# and against etcd 3.4 (etcdserverpb.Watch, one bidirectional stream per
# watcher with one create request), the same key / range_end, writer and
# value size. Both durable: strata-server's default --wal_sync=fsync, etcd
# fsyncs every write. For each case and run a fresh server (so its RSS before
# the watchers open is a clean baseline), pinned to CPU 0, the bench (writer
# and watchers) to CPU 1, strata and etcd runs interleaved; only one server
# runs at a time. Prints one line per run, then medians and Strata/etcd
# ratios. See docs/benchmarks.md, "Watch".
#   bench/watch-compare.sh [BUILD_DIR] [RUNS]   (default build/, 2; needs
#                                                Debian's etcd-server)
# Cases (watchers x mode): 1,000 and 10,000 x prefix (every write is an event
# for every watcher; 10 writes/s) and keys (one watcher per key; 50 writes/s,
# a rate etcd's single closed-loop writer keeps up with on a loaded VM);
# 5 s of writes, then at most 30 s for the events to arrive. The writer is
# closed-loop: if a server slows its Puts while it fans out, fewer writes (so
# fewer events) are offered to it; the table shows writes/s and Put p50 next
# to the delivery figures. Environment: WATCHERS ("1000 10000"), MODES
# ("prefix keys"), PREFIX_RATE (10), KEYS_RATE (50) narrow or change the cases.
set -u
B=$(realpath "${1:-build}")
RUNS=${2:-2}
. "$(dirname "$0")/common/lib.sh"
D=$(mktemp -d /tmp/strata-watch-compare.XXXXXX)
BENCH=$B/bench/strata-watch-bench
[[ -x $BENCH ]] || BENCH=$B/bench/watch/strata-watch-bench
PID=""
stop() { [[ -n $PID ]] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }; PID=""; }
trap 'stop; rm -rf "$D"' EXIT

# start_strata / start_etcd: a fresh server on CPU 0; sets PID and TARGET.
start_strata() {
  rm -rf "$D/strata"
  taskset -c 0 "$B/server/strata-server" --data_dir="$D/strata" \
    --listen=127.0.0.1:0 --metrics_listen= > "$D/strata.out" 2> "$D/strata.err" &
  PID=$!
  TARGET=$(wait_line "$D/strata.out" "strata-server listening on ") || return 1
}
start_etcd() {
  local eport pport
  read -r eport pport <<<"$(free_ports 2)"
  rm -rf "$D/etcd"
  taskset -c 0 etcd --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$eport" \
    --advertise-client-urls "http://127.0.0.1:$eport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "default=http://127.0.0.1:$pport" > "$D/etcd.log" 2>&1 &
  PID=$!
  TARGET=127.0.0.1:$eport
  for _ in $(seq 300); do
    curl -fs "http://$TARGET/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd did not start" >&2; tail -5 "$D/etcd.log" >&2; return 1
}

: > "$D/results.txt"
run() {  # SYSTEM MODE WATCHERS RATE RUN
  "start_$1" || exit 1
  sleep 1  # Let start-up allocation settle before the RSS baseline.
  local out
  out=$(taskset -c 1 timeout 240 "$BENCH" --system="$1" --target="$TARGET" \
    --server_pid="$PID" --mode="$2" --watchers="$3" --rate="$4" \
    --duration=5 --drain_seconds=30 --channels=50 --threads=2 \
    --label="$1-$2-$3-$5" 2>&1)
  stop
  local json
  json=$(grep -o 'json: .*' <<<"$out" | cut -c7-)
  if [[ -z $json ]]; then echo "$1 $2 $3 run $5: no result"; tail -3 <<<"$out"; return; fi
  echo "$json" >> "$D/results.txt"
  /usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['label']}: open {d['open']}/{d['watchers']} in {d['open_s']:.1f}s, {d['writes_per_s']:.1f} writes/s (put p50 {d['put_p50_us']/1000:.1f}ms), {d['events_per_s']:.0f} events/s, missed {d['missed']} late {d['late']}, p50 {d['p50_us']/1000:.2f}ms p99 {d['p99_us']/1000:.1f}ms, {d['kib_per_watcher']:.1f} KiB/watcher\")" "$json"
}

for w in ${WATCHERS:-1000 10000}; do
  for mode in ${MODES:-prefix keys}; do
    rate=$([[ $mode == prefix ]] && echo "${PREFIX_RATE:-10}" || echo "${KEYS_RATE:-50}")
    for r in $(seq "$RUNS"); do
      run strata "$mode" "$w" "$rate" "$r"
      run etcd "$mode" "$w" "$rate" "$r"
    done
  done
done

/usr/bin/python3 - "$D/results.txt" <<'EOF'
import collections, json, statistics, sys
pts = collections.defaultdict(list)
for line in open(sys.argv[1]):
    d = json.loads(line)
    pts[(d["system"], d["mode"], d["watchers"])].append(d)
def med(system, mode, w, k):
    v = [d[k] for d in pts.get((system, mode, w), [])]
    return statistics.median(v) if v else float("nan")
def ratio(a, b):
    return "%.2fx" % (a / b) if b else "-"
print("\nmedians of the runs above; Strata / etcd")
print("| mode | watchers | writes/s (Put p50 ms) | events/s delivered | p50 delivery ms | p99 delivery ms | missed + late | KiB per watcher (server RSS) |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("prefix", "keys"):
    for w in sorted({k[2] for k in pts}):
        s = lambda k: med("strata", mode, w, k)
        e = lambda k: med("etcd", mode, w, k)
        if not pts.get(("strata", mode, w)) and not pts.get(("etcd", mode, w)):
            continue
        cells = [mode, "{:,}".format(w)]
        cells.append("%.1f (%.1f) / %.1f (%.1f)" % (s("writes_per_s"), s("put_p50_us") / 1000, e("writes_per_s"), e("put_p50_us") / 1000))
        cells.append("%.0f / %.0f (%s)" % (s("events_per_s"), e("events_per_s"), ratio(s("events_per_s"), e("events_per_s"))))
        cells.append("%.2f / %.2f (%s)" % (s("p50_us") / 1000, e("p50_us") / 1000, ratio(s("p50_us"), e("p50_us"))))
        cells.append("%.1f / %.1f (%s)" % (s("p99_us") / 1000, e("p99_us") / 1000, ratio(s("p99_us"), e("p99_us"))))
        cells.append("%.0f+%.0f / %.0f+%.0f" % (s("missed"), s("late"), e("missed"), e("late")))
        cells.append("%.1f / %.1f (%s)" % (s("kib_per_watcher"), e("kib_per_watcher"), ratio(s("kib_per_watcher"), e("kib_per_watcher"))))
        print("| " + " | ".join(cells) + " |")
EOF
