#!/usr/bin/env bash
# Renders every kustomization under deploy/k8s (the base and each overlay)
# with `kubectl kustomize` and validates the output offline against the
# Kubernetes OpenAPI schemas (deploy/validate/validate.mjs: schema pass with
# the kubernetes-models validators, strict unknown-field pass with their
# TypeScript types; the ServiceMonitor CRD via
# @kubernetes-models/prometheus-operator). Also runs the validator's self-test
# (broken objects must be rejected). No cluster and no network beyond npm.
#
# Usage: deploy/validate-manifests.sh [OUT_DIR]   (rendered YAML kept there)
# Needs kubectl (with its built-in kustomize), node >= 20 and npm.
set -euo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VALIDATE="$DEPLOY/validate"

for tool in kubectl node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "validate-manifests: $tool is not installed" >&2; exit 1; }
done

# Pinned validator packages (package-lock.json); reinstalled only when the
# lock file changes.
stamp="$VALIDATE/node_modules/.strata-lock-sha256"
want="$(sha256sum "$VALIDATE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo ">>> npm ci (deploy/validate)"
  (cd "$VALIDATE" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false >/dev/null)
  echo "$want" >"$stamp"
fi

out="${1:-}"
if [ -z "$out" ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

rendered=()
while IFS= read -r kfile; do
  dir="$(dirname "$kfile")"
  name="${dir#"$DEPLOY/k8s/"}"
  name="${name//\//-}"
  echo ">>> kubectl kustomize deploy/k8s/${dir#"$DEPLOY/k8s/"}"
  kubectl kustomize "$dir" >"$out/$name.yaml"
  rendered+=("$out/$name.yaml")
done < <(find "$DEPLOY/k8s" -name kustomization.yaml | sort)
[ "${#rendered[@]}" -gt 0 ] || { echo "validate-manifests: no kustomization under deploy/k8s" >&2; exit 1; }

echo ">>> validator self-test"
node "$VALIDATE/validate.mjs" --self-test
echo ">>> validating ${#rendered[@]} rendered kustomizations"
node "$VALIDATE/validate.mjs" "${rendered[@]}"
