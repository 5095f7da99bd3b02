#!/usr/bin/env bash
# Captures the upgrade fixtures (test/upgrade/testdata) from a released commit:
#   hack/upgrade-fixtures.sh <commit> [out directory, default test/upgrade/testdata]
# builds that commit's kommo-operator in a temporary worktree and runs hack/upgrade-fixtures
# with it and the commit's CRDs. Run it when a release ships, so that the next one is
# tested against what this one writes.
set -euo pipefail
release=${1:?usage: hack/upgrade-fixtures.sh <release commit>}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${2:-$root/test/upgrade/testdata}" && cd "${2:-$root/test/upgrade/testdata}" && pwd)
commit=$(git -C "$root" rev-parse --short "$release^{commit}")
tree=$(mktemp -d "${TMPDIR:-/tmp}/kommo-release-XXXXXX")
cleanup() { git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"; }
trap cleanup EXIT
git -C "$root" worktree add --detach "$tree" "$commit" >/dev/null
echo "upgrade-fixtures: building release $commit" >&2
(cd "$tree" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tree/bin/kommo-operator" .)
assets=$("$root/hack/envtest/build.sh")
cd "$root"
KUBEBUILDER_ASSETS="$assets" go run ./hack/upgrade-fixtures \
  --binary "$tree/bin/kommo-operator" --crds "$tree/config/crd/bases" --release "$commit" \
  --out "$out"
