#!/bin/sh
# Prints, one per line, the Debian packages that own the shared libraries the
# given ELF binaries load (ldd's resolved paths mapped with dpkg-query -S).
# Used by the Dockerfile's build stage so the runtime stage installs exactly
# those packages. Fails if a library belongs to no package.
#
#   sh deploy/image/runtime-packages.sh BINARY...
set -eu

owner() {  # prints the package owning file $1, or nothing
  dpkg-query -S "$1" 2>/dev/null | sed -n '1s/: .*//p' | tr -d ' ' | tr ',' '\n'
}

if ldd "$@" | grep 'not found' >&2; then
  echo "runtime-packages.sh: unresolved libraries (above)" >&2
  exit 1
fi
# ldd lines: "libfoo.so.1 => /path/libfoo.so.1 (0x...)" and the loader
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; "BINARY:" headers are skipped.
libs=$(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3; next }
                       $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
all=""
for lib in $libs; do
  real=$(readlink -f "$lib")
  pkgs=""
  # usrmerge: dpkg may have registered the file under /lib or /usr/lib.
  for candidate in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
    pkgs=$(owner "$candidate")
    [ -n "$pkgs" ] && break
  done
  if [ -z "$pkgs" ]; then
    echo "runtime-packages.sh: no Debian package owns $lib" >&2
    exit 1
  fi
  all="$all
$pkgs"
done
# Drop the ":amd64" architecture qualifier and duplicates.
printf '%s\n' "$all" | sed -e '/^$/d' -e 's/:[a-z0-9_-]*$//' | sort -u
