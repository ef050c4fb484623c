# bench/common/lib.sh: start-up helpers the small comparison scripts share
# (sourced, not run). Loopback only; ports are picked free, never fixed, so
# two runs (or a test's server) on one machine do not collide.

# free_ports N: N distinct free 127.0.0.1 ports (all bound at once, then
# released; a port can in principle be taken again before it is used).
free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_line FILE PREFIX: waits (bounded: 30 s) for a stdout line of a
# strata-server that starts with PREFIX ("strata-server listening on ",
# "strata-server metrics on ") and prints the rest of it (HOST:PORT).
# Fails, printing FILE's stderr twin (FILE with .out -> .err), otherwise.
wait_line() {
  local file=$1 prefix=$2 line
  for _ in $(seq 300); do
    line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
    if [[ -n "$line" ]]; then echo "${line#"$prefix"}"; return 0; fi
    sleep 0.1
  done
  echo "${0##*/}: no '$prefix' line in $file after 30 s" >&2
  tail -n 20 "${file%.out}.err" >&2 2>/dev/null || true
  return 1
}
