#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl and kube-controller-manager (the garbage collector for
# the tests that rely on it) from the Go module proxy into bin/k8s/<version>/
# (versions pinned in hack/envtest/go.mod) and prints that directory. A binary that is
# already there is never rebuilt: the cold build takes minutes on two cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
version=${version#v}
dir="$root/bin/k8s/$version"
mkdir -p "$dir"

build() { # build <output name> <package>
  local out="$dir/$1"
  [ -x "$out" ] && return 0
  echo "envtest: building $1 ($2); the first build takes a few minutes" >&2
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$out.tmp" "$2")
  mv "$out.tmp" "$out"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
echo "$dir"
