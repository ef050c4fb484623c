#!/usr/bin/env bash
# bench/compare.sh: Strata vs LevelDB vs RocksDB with strata-dbbench, back to
# back in one run, and a table of the ratios strata/leveldb and
# strata/rocksdb per workload (ops/s and p99). See docs/benchmarks.md.
#
# Usage: bench/compare.sh [--num N] [--runs R] [--max-seconds S]
#                         [--benchmarks LIST] [--engines "strata leveldb rocksdb"]
#   --num N          entries (default 1000000)
#   --runs R         repeat the three engines R times (interleaved); the
#                    table shows the median of each number (default 1)
#   --max-seconds S  cap on each workload (default 60)
# Environment: BUILD_DIR (default <repo>/build-bench), DB_DIR (default a
# fresh directory under /tmp; use a disk-backed path, not tmpfs), OUT (raw
# rows, default $BUILD_DIR/compare-results.tsv).
#
# Installs libleveldb-dev and librocksdb-dev from Debian if missing (needs
# root), builds strata-dbbench with -DSTRATA_BENCH_COMPARE=ON and runs it
# once per engine with a fresh database directory each time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
NUM=1000000
RUNS=1
MAX_SECONDS=60
BENCHMARKS=""
ENGINES="strata leveldb rocksdb"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --num) NUM=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --max-seconds) MAX_SECONDS=$2; shift 2 ;;
    --benchmarks) BENCHMARKS=$2; shift 2 ;;
    --engines) ENGINES=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

need=()
for pkg in libleveldb-dev librocksdb-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [[ ${#need[@]} -gt 0 ]]; then
  echo "compare.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_BENCH_COMPARE=ON -DSTRATA_BUILD_TESTS=OFF \
  "${launcher[@]}" >/dev/null
nice -n 10 ninja -C "$BUILD_DIR" -j2 strata-dbbench >/dev/null
DBBENCH=$BUILD_DIR/bench/strata-dbbench

OUT=${OUT:-$BUILD_DIR/compare-results.tsv}
: > "$OUT"
DB_ROOT=${DB_DIR:-$(mktemp -d /tmp/strata-compare.XXXXXX)}
mkdir -p "$DB_ROOT"
LOG_DIR=$BUILD_DIR/compare-logs
mkdir -p "$LOG_DIR"

extra=()
[[ -n "$BENCHMARKS" ]] && extra+=(--benchmarks="$BENCHMARKS")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "file system of $DB_ROOT: $(df -T "$DB_ROOT" | awk 'NR==2 {print $2}')"
for run in $(seq 1 "$RUNS"); do
  for engine in $ENGINES; do
    db="$DB_ROOT/$engine-$run"
    rm -rf "$db"
    echo "== run $run/$RUNS: $engine (log: $LOG_DIR/$engine-$run.txt)"
    "$DBBENCH" --engine="$engine" --num="$NUM" --db="$db" \
      --max_seconds="$MAX_SECONDS" --results="$OUT" "${extra[@]}" \
      | tee "$LOG_DIR/$engine-$run.txt"
    rm -rf "$db"
  done
done
rmdir "$DB_ROOT" 2>/dev/null || true

/usr/bin/python3 - "$OUT" <<'EOF'
import collections, statistics, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
work = collections.defaultdict(lambda: collections.defaultdict(list))
summary = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for r in rows:
    engine, name = r[0], r[1]
    if name == "summary":
        summary[engine]["db_mib"].append(int(r[2]) / 1048576)
        summary[engine]["wamp"].append(float(r[6]))
        summary[engine]["rss_mib"].append(int(r[7]) / 1024)
        summary[engine]["source"] = r[4]
        continue
    if name not in order:
        order.append(name)
    work[(engine, name)]["ops"].append(float(r[5]))
    work[(engine, name)]["p99"].append(float(r[8]))
    if len(r) > 11:
        work[(engine, name)]["cpu"].append(float(r[11]))

def med(engine, name, key):
    v = work.get((engine, name), {}).get(key)
    return statistics.median(v) if v else None

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else "%.2f" % (a / b)

def fmt(v, spec):
    return "-" if v is None else spec % v

engines = [e for e in ("strata", "leveldb", "rocksdb") if any(k[0] == e for k in work)]
runs = max((len(v["ops"]) for v in work.values()), default=0)
print()
print("median of %d run(s); ops/s (higher is better), p99 in us (lower is better)" % runs)
print()
hdr = "| workload | " + " | ".join("%s ops/s" % e for e in engines) + " | " + \
      " | ".join("%s p99" % e for e in engines)
if "leveldb" in engines:
    hdr += " | ops/s strata/leveldb | p99 strata/leveldb"
if "rocksdb" in engines:
    hdr += " | ops/s strata/rocksdb | p99 strata/rocksdb"
print(hdr + " |")
print("|" + "---|" * (hdr.count("|")))
for name in order:
    cells = [name]
    cells += [fmt(med(e, name, "ops"), "%.0f") for e in engines]
    cells += [fmt(med(e, name, "p99"), "%.2f") for e in engines]
    for other in ("leveldb", "rocksdb"):
        if other in engines:
            cells.append(ratio(med("strata", name, "ops"), med(other, name, "ops")))
            cells.append(ratio(med("strata", name, "p99"), med(other, name, "p99")))
    print("| " + " | ".join(cells) + " |")
print()
print("CPU time per operation in us (all threads of the process, including background "
      "compaction; steadier than ops/s on a shared machine)")
print()
hdr = "| workload | " + " | ".join("%s" % e for e in engines)
hdr += "".join(" | strata/%s" % e for e in engines if e != "strata")
print(hdr + " |")
print("|" + "---|" * (hdr.count("|")))
for name in order:
    cells = [name] + [fmt(med(e, name, "cpu"), "%.2f") for e in engines]
    cells += [ratio(med("strata", name, "cpu"), med(e, name, "cpu")) for e in engines if e != "strata"]
    print("| " + " | ".join(cells) + " |")
print()
print("| engine | max db size (MiB) | write amplification (%s / user bytes) | peak RSS (MiB) |"
      % (summary[engines[0]].get("source", "write_bytes") if engines else "write_bytes"))
print("|---|---|---|---|")
for e in engines:
    s = summary[e]
    if not s["db_mib"]:
        continue
    print("| %s | %.1f | %.2f | %.1f |" % (e, statistics.median(s["db_mib"]),
          statistics.median(s["wamp"]), statistics.median(s["rss_mib"])))
EOF
echo "raw rows: $OUT"
