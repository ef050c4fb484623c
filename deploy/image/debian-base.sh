#!/usr/bin/env bash
# Makes the base images the Dockerfile names, debian:bookworm and
# debian:bookworm-slim, from Debian's own packages with debootstrap (minbase)
# and imports them into local container storage with `podman import`: no
# registry is needed. The mirror is the one apt uses on this machine.
#
#   deploy/image/debian-base.sh            # build if missing (cached)
#   STRATA_REBUILD_BASE=1 deploy/image/debian-base.sh   # rebuild both
#
# Overrides: STRATA_DEBIAN_MIRROR, STRATA_DEBIAN_SECURITY_MIRROR (URLs).
# Requires root, debootstrap and podman.
set -euo pipefail

readonly SUITE=bookworm
readonly FULL_TAG=docker.io/library/debian:bookworm
readonly SLIM_TAG=docker.io/library/debian:bookworm-slim

# Prints the first enabled `deb` URI in the apt sources for suite $1.
apt_mirror_for() {
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$suite" 'BEGIN { RS = ""; FS = "\n" } {
      uris = ""; suites = ""; types = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^[ \t]*#/) continue
        if (sub(/^URIs:[ \t]*/, "", line)) uris = line
        else if (sub(/^Suites:[ \t]*/, "", line)) suites = line
        else if (sub(/^Types:[ \t]*/, "", line)) types = line
        else if (sub(/^Enabled:[ \t]*/, "", line)) enabled = line
      }
      if (enabled == "no" || types !~ /(^| )deb( |$)/) next
      n = split(suites, s, /[ \t]+/)
      for (j = 1; j <= n; j++) if (s[j] == want) { split(uris, u, /[ \t]+/); print u[1]; exit }
    }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '$1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
      if ($(i + 1) == want) print $i
    }' "$f"
  done
}

image_exists() { podman image exists "$1" 2>/dev/null; }

if [ "${STRATA_REBUILD_BASE:-0}" != 1 ] && image_exists "$FULL_TAG" && image_exists "$SLIM_TAG"; then
  echo ">>> base images $FULL_TAG and $SLIM_TAG already in local storage (STRATA_REBUILD_BASE=1 rebuilds)"
  exit 0
fi

mirror="${STRATA_DEBIAN_MIRROR:-$(apt_mirror_for "$SUITE" | head -n 1)}"
security="${STRATA_DEBIAN_SECURITY_MIRROR:-$(apt_mirror_for "$SUITE-security" | head -n 1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${security:-http://deb.debian.org/debian-security}"
mirror="${mirror%/}"
security="${security%/}"
echo ">>> debootstrap $SUITE (minbase) from $mirror (security: $security)"

work="$(mktemp -d /var/tmp/strata-debian-base.XXXXXX)"
root="$work/rootfs"
cleanup() {
  mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
  rm -rf "$work"
}
trap cleanup EXIT

debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "debootstrap failed (log above)" >&2
  exit 1
}

# The same apt sources as Debian's official images, on this machine's mirror.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# Container-friendly apt settings, as in Debian's official images.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"

# Bring in the point-release and security updates, like the official images.
mount -t proc proc "$root/proc"
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get upgrade -y -qq >/dev/null' >>"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "apt-get upgrade in the new root failed (log above)" >&2
  exit 1
}
umount "$root/proc"

# Strip what a container never needs.
strip_root() {
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial/* \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/* \
    "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
  rm -f "$root"/etc/hostname "$root"/etc/resolv.conf
  : >"$root/etc/machine-id"
}

import_root() {  # tag
  podman import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --quiet --message "debootstrap --variant=minbase $SUITE $mirror" \
    - "$1" < <(tar --numeric-owner --xattrs --acls -C "$root" -c .) >/dev/null
  echo ">>> imported $1 ($(podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

strip_root
import_root "$FULL_TAG"

# -slim: what Debian's slim images drop (docs, man pages, locales), now and for
# every package installed later.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CONF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* \
  "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
import_root "$SLIM_TAG"
