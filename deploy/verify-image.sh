#!/usr/bin/env bash
# Builds the Strata container image with the real, unchanged Dockerfile and
# checks it end to end, on a machine with no container daemon and no registry:
#
#  1. installs podman, buildah and debootstrap from Debian if missing;
#  2. makes the base images debian:bookworm and debian:bookworm-slim with
#     debootstrap + `podman import` (deploy/image/debian-base.sh; cached in
#     local storage between runs);
#  3. `podman build --isolation chroot --network host -f Dockerfile -t strata:dev .`
#  4. checks the image config (non-root uid 10001, /data volume, ports 50051
#     and 9090, exec-form entrypoint with the 0.0.0.0 listen flags) and that
#     every shared library resolves inside the image;
#  5. runs the image's own ENTRYPOINT inside the image filesystem with
#     `buildah run --isolation chroot` (`podman run` cannot set resource
#     limits on these machines), its /data VOLUME as a fresh anonymous
#     volume (as `docker run` without -v) and the listen flags overridden to
#     free loopback ports, then with the
#     image's `strata` CLI: health, put, get, get of a missing key, scan
#     --prefix; scrapes /metrics with curl and expects strata_* metrics;
#     sends SIGTERM and expects exit 0 within 10 s; starts it again on the
#     same /data and reads the data back; SIGTERM again;
#  6. removes its containers and temporary files and prints the image size,
#     the build time and the total time.
#
# Usage (as root): deploy/verify-image.sh
#   STRATA_IMAGE=strata:dev       image tag to build and check
#   STRATA_IMAGE_JOBS=2           compile jobs inside the image build
#   STRATA_SKIP_BUILD=1           check an already built $STRATA_IMAGE
#   STRATA_REBUILD_BASE=1         re-make the debootstrap base images
# Exits non-zero on the first failed check, with the server log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"

IMAGE="${STRATA_IMAGE:-strata:dev}"
JOBS="${STRATA_IMAGE_JOBS:-2}"
readonly UID_EXPECTED=10001
readonly DRAIN_LIMIT_S=10

t_start=$(date +%s)
log() { echo ">>> $*"; }
fail() { echo "verify-image: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (podman build, debootstrap and chroot need it)"
install_packages podman buildah debootstrap curl ca-certificates

work="$(mktemp -d /var/tmp/strata-verify-image.XXXXXX)"
ctr=""
server_pid=""
runner_pid=""
cleanup() {
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid"
  fi
  if [ -n "$runner_pid" ]; then
    wait "$runner_pid" 2>/dev/null
  fi
  if [ -n "$ctr" ]; then
    buildah rm "$ctr" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- build ----
t0=$(date +%s)
bash "$ROOT/deploy/image/debian-base.sh"
base_s=$(( $(date +%s) - t0 ))

build_s=0
if [ "${STRATA_SKIP_BUILD:-0}" = 1 ]; then
  podman image exists "$IMAGE" || fail "STRATA_SKIP_BUILD=1 but there is no image $IMAGE"
  log "skipping the build; checking the existing $IMAGE"
else
  log "podman build -f Dockerfile -t $IMAGE (JOBS=$JOBS; log: $work/build.log)"
  t0=$(date +%s)
  if ! (cd "$ROOT" && nice -n 10 podman build --isolation chroot --network host \
        --pull=never --format docker --build-arg "JOBS=$JOBS" \
        --build-arg "GIT_SHA=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
        -f Dockerfile -t "$IMAGE" .) >"$work/build.log" 2>&1; then
    tail -n 150 "$work/build.log" >&2
    fail "podman build failed (last lines above)"
  fi
  build_s=$(( $(date +%s) - t0 ))
  grep -m1 '^runtime packages:' "$work/build.log" || true
  log "image built in ${build_s}s"
fi

# --------------------------------------------------------- image config ----
inspect() { podman image inspect --format "$1" "$IMAGE"; }
user="$(inspect '{{.Config.User}}')"
[ "$user" = "$UID_EXPECTED:$UID_EXPECTED" ] || [ "$user" = "$UID_EXPECTED" ] ||
  fail "image user is '$user', want $UID_EXPECTED"
ports="$(inspect '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' | sed 's/ *$//')"
for p in 50051/tcp 9090/tcp; do
  [[ " $ports " == *" $p "* ]] || fail "image does not expose $p (exposes: $ports)"
done
volumes="$(inspect '{{range $v, $_ := .Config.Volumes}}{{$v}} {{end}}' | sed 's/ *$//')"
[[ " $volumes " == *" /data "* ]] || fail "image has no /data volume (volumes: $volumes)"
mapfile -t entrypoint < <(inspect '{{range .Config.Entrypoint}}{{.}}{{"\n"}}{{end}}' | sed '/^$/d')
[ "${#entrypoint[@]}" -gt 0 ] || fail "image has no exec-form ENTRYPOINT"
[ "${entrypoint[0]}" = /usr/local/bin/strata-server ] ||
  fail "ENTRYPOINT runs '${entrypoint[0]}', want /usr/local/bin/strata-server (exec form)"
for f in --listen=0.0.0.0:50051 --metrics_listen=0.0.0.0:9090 --data_dir=/data; do
  [[ " ${entrypoint[*]} " == *" $f "* ]] || fail "ENTRYPOINT lacks $f: ${entrypoint[*]}"
done
log "config ok: user $user, ports $ports, volume $volumes, entrypoint ${entrypoint[*]}"

ctr="$(buildah from --pull=never --quiet --name "strata-verify-$$" "$IMAGE")"
run_in() {  # run a command inside the image filesystem (image user, host network)
  buildah run --isolation chroot --network host "$ctr" -- "$@"
}
if run_in sh -c 'ldd /usr/local/bin/strata-server /usr/local/bin/strata' | grep 'not found'; then
  fail "shared libraries missing in the image (above)"
fi
[ "$(run_in id -u)" = "$UID_EXPECTED" ] || fail "commands in the image do not run as uid $UID_EXPECTED"
log "libraries resolve; runs as uid $UID_EXPECTED"

# ---------------------------------------------------------------- serve ----
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
grpc_port="$(free_port)"
metrics_port="$(free_port)"
while [ "$metrics_port" = "$grpc_port" ]; do metrics_port="$(free_port)"; done
addr="127.0.0.1:$grpc_port"

descendants() {  # pids below $1, depth first
  local p
  for p in $(pgrep -P "$1" || true); do
    echo "$p"
    descendants "$p"
  done
}

# Starts the image's ENTRYPOINT with the listen flags moved to loopback (a
# repeated flag overrides the earlier one) and waits for the ready line.
start_server() {  # log-file
  local logf="$1" i p
  : >"$logf"
  # /data is the image's VOLUME: buildah gives the container its own volume
  # (seeded from the image's /data, owner and mode included), kept across
  # the two runs below and removed with the container.
  buildah run --isolation chroot --network host "$ctr" -- \
    "${entrypoint[@]}" --listen="$addr" --metrics_listen="127.0.0.1:$metrics_port" \
    >"$logf" 2>&1 &
  runner_pid=$!
  server_pid=""
  for i in $(seq 1 300); do
    if [ -z "$server_pid" ]; then
      for p in $(descendants "$runner_pid"); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = strata-server ]; then server_pid=$p; fi
      done
    fi
    if grep -q "strata-server listening on" "$logf"; then break; fi
    if ! kill -0 "$runner_pid" 2>/dev/null; then
      cat "$logf" >&2
      if grep -q 'Unknown command line flag' "$logf"; then
        echo "verify-image: the image's ENTRYPOINT passes a flag this strata-server does not define" >&2
      fi
      fail "strata-server exited before it was ready (log above)"
    fi
    sleep 0.2
  done
  grep -q "strata-server listening on" "$logf" || { cat "$logf" >&2; fail "strata-server not ready after 60 s"; }
  [ -n "$server_pid" ] || fail "could not find the strata-server process under buildah run"
  local uid
  uid="$(awk '/^Uid:/ { print $2 }' "/proc/$server_pid/status")"
  [ "$uid" = "$UID_EXPECTED" ] || fail "strata-server runs as uid $uid, want $UID_EXPECTED"
  log "$(grep -m1 "strata-server listening on" "$logf") (pid $server_pid, uid $uid)"
}

# SIGTERM to the server itself (buildah run does not forward signals) and a
# clean exit 0 within the drain limit.
stop_server() {  # log-file
  local logf="$1" t0 rc=0 elapsed
  t0=$(date +%s%N)
  kill -TERM "$server_pid"
  for _ in $(seq 1 $(( (DRAIN_LIMIT_S + 5) * 10 ))); do
    kill -0 "$runner_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$runner_pid" 2>/dev/null; then
    cat "$logf" >&2
    fail "strata-server still running $((DRAIN_LIMIT_S + 5)) s after SIGTERM"
  fi
  wait "$runner_pid" || rc=$?
  runner_pid=""
  elapsed=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$rc" -eq 0 ] || { cat "$logf" >&2; fail "strata-server exited $rc after SIGTERM (log above)"; }
  [ "$elapsed" -le $(( DRAIN_LIMIT_S * 1000 )) ] || fail "SIGTERM drain took ${elapsed} ms (> ${DRAIN_LIMIT_S} s)"
  log "SIGTERM: exit 0 after ${elapsed} ms"
  server_pid=""
}

cli() { run_in /usr/local/bin/strata --addr="$addr" "$@"; }
expect_eq() {  # what got want
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

start_server "$work/server1.log"

cli health >"$work/health.out" || fail "strata health exited $?: $(cat "$work/health.out")"
log "health: $(tr '\n' ' ' <"$work/health.out")"
cli put greeting hello >/dev/null || fail "strata put greeting exited $?"
cli put user/1 alice >/dev/null || fail "strata put user/1 exited $?"
cli put user/2 bob >/dev/null || fail "strata put user/2 exited $?"
expect_eq "get greeting" "$(cli get greeting)" hello
rc=0
cli get no-such-key >/dev/null 2>&1 || rc=$?
expect_eq "exit code of get of a missing key" "$rc" 1
scan="$(cli scan --prefix=user/)"
expect_eq "scan --prefix=user/" "$scan" "$(printf 'user/1\talice\nuser/2\tbob')"
log "put/get/scan ok: $(tr '\t\n' '= ' <<<"$scan")"

if ! curl -fsS --max-time 5 "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt"; then
  fail "no /metrics on --metrics_listen=127.0.0.1:$metrics_port (the server accepted the flag but serves nothing there)"
fi
metric_lines="$(grep -c '^strata_' "$work/metrics.txt" || true)"
[ "$metric_lines" -gt 0 ] ||
  fail "/metrics answered ($(wc -l <"$work/metrics.txt") lines) but has no strata_* metric"
log "/metrics: $metric_lines strata_* sample lines, e.g. $(grep -m1 '^strata_' "$work/metrics.txt")"

stop_server "$work/server1.log"

# Restart on the same /data: the acknowledged writes are still there.
start_server "$work/server2.log"
expect_eq "get greeting after restart" "$(cli get greeting)" hello
expect_eq "get user/2 after restart" "$(cli get user/2)" bob
log "restart on the same /data: data read back"
stop_server "$work/server2.log"

files="$(run_in find /data -type f)"
[ -n "$files" ] || fail "the server wrote nothing under /data"
bad_owner="$(run_in find /data -not -uid "$UID_EXPECTED")"
[ -z "$bad_owner" ] || fail "not owned by uid $UID_EXPECTED in /data: $bad_owner"
log "/data (owned by uid $UID_EXPECTED): $(sed 's|^/data/||' <<<"$files" | sort | tr '\n' ' ')"

# Build-stage layers of earlier builds that nothing uses any more (the
# current ones stay as the layer cache for the next build).
podman image prune -f --filter label=strata.stage=build --filter until=24h >/dev/null 2>&1 || true

size_mb="$(inspect '{{.Size}}' | awk '{ printf "%.1f", $1 / 1e6 }')"
total_s=$(( $(date +%s) - t_start ))
echo "verify-image: PASS: image $IMAGE ${size_mb} MB; base images ${base_s}s, build ${build_s}s, total ${total_s}s"
