#!/usr/bin/env bash
# Builds a released commit's kommo-operator into bin/kommo-operator-<commit> (once) and
# prints its path: the previous release for upgrade tests.
#   hack/release-binary.sh <commit>
set -euo pipefail
release=${1:?usage: hack/release-binary.sh <release commit>}
root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse --short "$release^{commit}")
out="$root/bin/kommo-operator-$commit"
if [ ! -x "$out" ]; then
  tree=$(mktemp -d "${TMPDIR:-/tmp}/kommo-release-XXXXXX")
  trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
  git -C "$root" worktree add --detach "$tree" "$commit" >/dev/null
  echo "release-binary: building release $commit" >&2
  mkdir -p "$root/bin"
  (cd "$tree" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
echo "$out"
