#!/usr/bin/env bash
# CI check of the packaging (deploy/README.md): validates the Kubernetes
# manifests offline, then builds the container image with the real Dockerfile
# and checks it end to end (deploy/verify-image.sh). Run as root on Debian
# bookworm; installs podman, buildah and debootstrap from Debian if missing.
# Exits non-zero if either part fails.
#
#   scripts/verify-deploy.sh            # both parts
#   scripts/verify-deploy.sh manifests  # manifest validation only (seconds)
#   scripts/verify-deploy.sh image      # image build and check only (minutes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-all}"
case "$what" in
  all|manifests|image) ;;
  *) echo "usage: $0 [all|manifests|image]" >&2; exit 2 ;;
esac

t0=$(date +%s)
if [ "$what" != image ]; then
  echo ">>> verify-deploy: Kubernetes manifests"
  bash "$ROOT/deploy/validate-manifests.sh"
fi
t1=$(date +%s)
if [ "$what" != manifests ]; then
  echo ">>> verify-deploy: container image"
  bash "$ROOT/deploy/verify-image.sh"
fi
t2=$(date +%s)
echo "verify-deploy: ok (manifests $((t1 - t0))s, image $((t2 - t1))s, total $((t2 - t0))s)"
