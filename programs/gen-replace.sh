#!/usr/bin/env bash
# Prints a `replace` line for every k8s.io staging module of k8s.io/kubernetes.
# Usage: gen-replace.sh GO_MOD_OF_K8S_IO_KUBERNETES STAGING_VERSION
#
# The staging modules are those that k8s.io/kubernetes's own go.mod replaces with
# ./staging/src/...; as a dependency they must come from their published v0.<minor>.<patch>
# twins instead. The list is read from that go.mod, so it follows each release.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 GO_MOD STAGING_VERSION" >&2
  exit 2
fi
gomod=$1 version=$2
awk -v version="$version" '
  # both forms: "replace a => ./staging/..." and lines inside a "replace ( ... )" block
  /^replace[ \t]*\(/ { inblock = 1; next }
  inblock && /^\)/ { inblock = 0; next }
  {
    line = $0
    sub(/^replace[ \t]+/, "", line)
    if ((inblock || $1 == "replace") && line ~ /=>[ \t]*\.\/staging\/src\//) {
      split(line, f, /[ \t]+/)
      mod = (f[1] == "") ? f[2] : f[1]
      printf "replace %s => %s %s\n", mod, mod, version
      n++
    }
  }
  END { if (n == 0) { print "gen-replace: no staging modules found" > "/dev/stderr"; exit 1 } }
' "$gomod"
