#!/usr/bin/env bash
# CI check of the Prometheus alerting rules (docs/metrics.md, "Alerts") and
# the Grafana dashboard:
#   promtool check rules deploy/prometheus/alerts.yaml
#   promtool test rules  deploy/prometheus/alerts_test.yaml
#   every PromQL query of deploy/grafana/strata-dashboard.json parses
#   (checked as recording rules, Grafana variables replaced), and every
#   strata_*/process_* metric the rules and the dashboard use is one
#   docs/metrics.md documents (promtool cannot know our metric names).
# ctest runs it as `metrics_alert_rules`.
#
# promtool comes from Debian's `prometheus` package. If it is not on PATH
# (or in $STRATA_TOOLS_DIR), the script fetches that package with
# `apt-get download` and extracts only /usr/bin/promtool (a static binary)
# into $STRATA_TOOLS_DIR (default /var/cache/strata-tools, or
# ~/.cache/strata-tools when that is not writable). It does not install the
# package: that would start a Prometheus server on port 9090, the default
# port of strata-server's metrics.
#
# If promtool cannot be had (no apt, offline, --no-fetch), it falls back to
# a structural check of the YAML (Debian's python3-yaml) and says so on
# stderr: expressions are then NOT validated.
#
#   scripts/check-alerts.sh              # fetch promtool if needed
#   scripts/check-alerts.sh --no-fetch   # never download
#   STRATA_PROMTOOL=/path/to/promtool scripts/check-alerts.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RULES_DIR="$ROOT/deploy/prometheus"
DASHBOARD="$ROOT/deploy/grafana/strata-dashboard.json"
DOCS="$ROOT/docs/metrics.md"
fetch=1
case "${1:-}" in
  --no-fetch) fetch=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-fetch]" >&2; exit 2 ;;
esac

log() { echo "check-alerts: $*" >&2; }

tools_dir() {
  if [ -n "${STRATA_TOOLS_DIR:-}" ]; then
    echo "$STRATA_TOOLS_DIR"
  elif mkdir -p /var/cache/strata-tools 2>/dev/null && [ -w /var/cache/strata-tools ]; then
    echo /var/cache/strata-tools
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/strata-tools"
  fi
}

find_promtool() {
  if [ -n "${STRATA_PROMTOOL:-}" ]; then
    [ -x "$STRATA_PROMTOOL" ] && { echo "$STRATA_PROMTOOL"; return 0; }
    log "STRATA_PROMTOOL=$STRATA_PROMTOOL is not executable"
    return 1
  fi
  if command -v promtool >/dev/null 2>&1; then command -v promtool; return 0; fi
  local cached
  cached="$(tools_dir)/promtool"
  if [ -x "$cached" ]; then echo "$cached"; return 0; fi
  return 1
}

# Downloads Debian's prometheus package and extracts promtool from it.
fetch_promtool() {
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || {
    log "apt-get/dpkg-deb not available"
    return 1
  }
  local dir tmp
  dir="$(tools_dir)"
  mkdir -p "$dir" || return 1
  tmp="$(mktemp -d)"
  # _apt must be able to write the download directory (else apt warns and
  # downloads unsandboxed).
  chmod 0777 "$tmp"
  log "promtool not found: fetching Debian's prometheus package (promtool only) into $dir"
  if ! (cd "$tmp" && apt-get download -qq prometheus >"$tmp/apt.log" 2>&1); then
    if [ "$(id -u)" -eq 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$tmp/apt.log" 2>&1 || true
      (cd "$tmp" && apt-get download -qq prometheus >>"$tmp/apt.log" 2>&1) || {
        cat "$tmp/apt.log" >&2; rm -rf "$tmp"; return 1; }
    else
      cat "$tmp/apt.log" >&2; rm -rf "$tmp"; return 1
    fi
  fi
  local deb
  deb="$(ls "$tmp"/prometheus_*.deb 2>/dev/null | head -n1)"
  if [ -z "$deb" ] ||
     ! dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/bin/promtool; then
    log "could not extract promtool from ${deb:-the package}"
    rm -rf "$tmp"
    return 1
  fi
  # Atomic: a concurrent run sees the old state or the whole binary.
  install -m 0755 "$tmp/usr/bin/promtool" "$dir/.promtool.$$"
  mv -f "$dir/.promtool.$$" "$dir/promtool"
  rm -rf "$tmp"
}

# Fallback: the YAML has the shape of a Prometheus rule file.
structural_check() {
  /usr/bin/python3 - "$RULES_DIR/alerts.yaml" "$RULES_DIR/alerts_test.yaml" <<'PY'
import re, sys
try:
    import yaml
except ImportError:
    sys.exit("check-alerts: python3-yaml is missing too; cannot check the rules")
rules_path, tests_path = sys.argv[1], sys.argv[2]
errors = []
doc = yaml.safe_load(open(rules_path))
duration = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list) or not doc["groups"]:
    sys.exit(f"{rules_path}: top level must be a mapping with a non-empty 'groups' list")
names = set()
count = 0
for g in doc["groups"]:
    if not isinstance(g, dict) or not isinstance(g.get("name"), str):
        errors.append("every group needs a string 'name'"); continue
    if g["name"] in names: errors.append(f"duplicate group {g['name']}")
    names.add(g["name"])
    for r in g.get("rules") or []:
        count += 1
        kind = [k for k in ("alert", "record") if k in r]
        where = f"group {g['name']}, rule {r.get('alert', r.get('record', '?'))}"
        if len(kind) != 1: errors.append(f"{where}: needs exactly one of alert/record")
        if not isinstance(r.get("expr"), (str, int, float)) or not str(r.get("expr")).strip():
            errors.append(f"{where}: missing expr")
        if "for" in r and not duration.match(str(r["for"])):
            errors.append(f"{where}: bad 'for' duration {r['for']!r}")
        for key in ("labels", "annotations"):
            v = r.get(key, {})
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                errors.append(f"{where}: {key} must map names to strings")
        unknown = set(r) - {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
        if unknown: errors.append(f"{where}: unknown keys {sorted(unknown)}")
tests = yaml.safe_load(open(tests_path))
if not isinstance(tests, dict) or not isinstance(tests.get("tests"), list):
    errors.append(f"{tests_path}: needs a 'tests' list")
if errors:
    sys.exit("\n".join(f"{rules_path}: {e}" for e in errors))
print(f"check-alerts: {count} rules have a valid structure (expressions NOT checked)")
PY
}

# Metric names used by the rules and the dashboard are documented ones;
# writes the dashboard's queries as a rule file to $1 for promtool.
check_names_and_export_dashboard() {
  /usr/bin/python3 - "$RULES_DIR/alerts.yaml" "$DASHBOARD" "$DOCS" "$1" <<'PY'
import json, re, sys
rules_path, dash_path, docs_path, out_path = sys.argv[1:5]
documented = {}
for line in open(docs_path):
    m = re.match(r"^\| `([a-z0-9_]+)(\{[^`]*\})?` \| (counter|gauge|histogram|summary) \|", line)
    if m:
        documented[m.group(1)] = m.group(3)
if not documented:
    sys.exit(f"{docs_path}: no metric table rows found")
def walk(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                found.append(v)
            else:
                walk(v, found)
    elif isinstance(node, list):
        for v in node:
            walk(v, found)
dash = json.load(open(dash_path))
queries = []
walk(dash, queries)
if not queries:
    sys.exit(f"{dash_path}: no queries")
rules_text = open(rules_path).read()
errors = []
for source, text in [(rules_path, rules_text)] + [(dash_path, q) for q in queries]:
    for name in re.findall(r"\b((?:strata|process)_[a-z0-9_]+)", text):
        base = name
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix) and documented.get(name[: -len(suffix)]) == "histogram":
                base = name[: -len(suffix)]
        if base not in documented:
            errors.append(f"{source}: {name} is not a metric in {docs_path}")
if errors:
    sys.exit("\n".join(sorted(set(errors))))
with open(out_path, "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, q in enumerate(queries):
        q = (q.replace("$__rate_interval", "5m").replace("$__interval", "1m")
              .replace("$instance", ".*"))
        out.write(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(q)}\n")
print(f"check-alerts: {len(queries)} dashboard queries; metric names match {docs_path}")
PY
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
check_names_and_export_dashboard "$work/dashboard-rules.yaml"

promtool="$(find_promtool || true)"
if [ -z "$promtool" ] && [ "$fetch" -eq 1 ]; then
  fetch_promtool || log "could not fetch promtool"
  promtool="$(find_promtool || true)"
fi

if [ -n "$promtool" ]; then
  log "using $promtool ($("$promtool" --version 2>&1 | head -n1))"
  # promtool resolves rule_files relative to the test file's directory.
  "$promtool" check rules "$RULES_DIR/alerts.yaml"
  "$promtool" test rules "$RULES_DIR/alerts_test.yaml"
  "$promtool" check rules "$work/dashboard-rules.yaml" >/dev/null ||
    { log "a dashboard query does not parse (see above)"; exit 1; }
  echo "check-alerts: ok (promtool check rules + test rules; dashboard queries parse)"
else
  log "WARNING: promtool is unavailable; falling back to a structural YAML check."
  log "WARNING: PromQL expressions and the rule unit tests were NOT checked."
  structural_check
fi
