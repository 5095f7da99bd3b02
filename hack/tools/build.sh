#!/usr/bin/env bash
# Builds one pinned tool (its version is in hack/tools/go.mod) from the Go module proxy into
# bin/<tool>-<version> and prints that path. A binary that is already there is never rebuilt.
#
#   hack/tools/build.sh promtool
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
case "${1:-}" in
  promtool) module=github.com/prometheus/prometheus pkg=$module/cmd/promtool ;;
  *) echo "usage: $0 promtool" >&2; exit 2 ;;
esac
version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
out="$root/bin/$1-$version"
if [ ! -x "$out" ]; then
  echo "tools: building $1 $version; the first build takes a few minutes" >&2
  mkdir -p "$root/bin"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
fi
echo "$out"
