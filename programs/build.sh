#!/usr/bin/env bash
# Builds the real programs that the slow tests run, from Go modules, into a cache outside the
# repository, keyed by version:
#   $CACHE/kubernetes-v1.35.N/{kube-apiserver,kubeadm,...}
#   $CACHE/etcd-v3.6.N/{etcd,etcdctl,etcdutl}
#   $CACHE/govmomi-vX.Y.Z/vcsim            (or govmomi-0.24.2-debian/vcsim, the fallback)
#   $CACHE/coredns-v1.13.N/coredns          (programs/coredns/main.go: kubeadm's plugins only)
# CACHE is $NSXKUBE_TEST_BIN, default ~/.cache/nsxkube/test-bin. A program found there at the
# top level ($CACHE/kube-apiserver) is taken as prebuilt, and one already built is skipped: a
# directory of prebuilt programs makes this script build nothing.
#
# Usage: programs/build.sh [NAME...]
#   NAME: kube-apiserver kubeadm kube-controller-manager kube-scheduler kube-proxy kubelet kubectl
#         etcd etcdctl etcdutl vcsim coredns, "all", or "nodes" (what the lab's node images and
#         nodes need: every Kubernetes program, etcd's three, coredns). Default: kube-apiserver
#         kubeadm etcd etcdctl etcdutl vcsim, plus the names in $NSXKUBE_TEST_BIN_EXTRA.
#   NSXKUBE_VCSIM_SOURCE=debian builds vcsim from Debian's govmomi only (to try the fallback).
#
# A program that fails to build gets one line saying why, a NAME.failed file holding that
# reason (tests skip with it), and the others are still built. Exit 0 when every requested
# program is there, 1 otherwise. Versions: programs/versions.env.
# The prepare_*/build_* functions are called through build_group's arguments:
# shellcheck disable=SC2317
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env disable=SC1091
. "$HERE/versions.env"

CACHE=${NSXKUBE_TEST_BIN:-$HOME/.cache/nsxkube/test-bin}
mkdir -p "$CACHE" && CACHE=$(cd "$CACHE" && pwd) || exit 1
KUBE_DIR="$CACHE/kubernetes-$KUBERNETES_VERSION"
ETCD_DIR="$CACHE/etcd-$ETCD_VERSION"
VCSIM_DIR="$CACHE/govmomi-$GOVMOMI_VERSION"
VCSIM_DEBIAN_DIR="$CACHE/govmomi-$GOVMOMI_DEBIAN_VERSION-debian"
COREDNS_DIR="$CACHE/coredns-$COREDNS_VERSION"
WORK="$CACHE/src"
LOGS="$CACHE/logs"
DEBIAN_GOPATH=/usr/share/gocode

KUBE_NAMES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubeadm kubectl kubelet)
ETCD_NAMES=(etcd etcdctl etcdutl)
DEFAULT_NAMES=(kube-apiserver kubeadm etcd etcdctl etcdutl vcsim)

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"
export GOMAXPROCS=${GOMAXPROCS:-2}
export CGO_ENABLED=0
LDFLAGS_BASE="-s -w"

# ---- helpers ---------------------------------------------------------------------------

say() { printf '%s\n' "$*"; }

# The last line of a build log that says something (not go's progress lines).
last_error() {
  local line
  line=$(grep -v -E '^[[:space:]]*$|^go: (downloading|finding|extracting)|^exit status|^# ' "$1" | tail -n 1)
  printf '%s' "${line:0:400}"
}

# Records one program that failed: one line out, a NAME.failed marker for the tests.
fail() { # dir name what reason
  local dir=$1 name=$2 what=$3 reason=$4
  mkdir -p "$dir"
  printf '%s\n' "$reason" >"$dir/$name.failed"
  say "FAILED  $name ($what): $reason"
  FAILED+=("$name")
}

# Moves a fresh build into place and records where it came from.
install_built() { # tmpdir dir name origin seconds
  local tmp=$1 dir=$2 name=$3 origin=$4 secs=$5
  mv -f "$tmp/$name" "$dir/$name"
  rm -f "$dir/$name.failed"
  printf '%s\nbuilt %s in %s s with %s\n' "$origin" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$secs" \
    "$("$GO" version 2>/dev/null)" >"$dir/$name.source"
  say "built   $name: $origin, $secs s -> $dir/$name"
}

# Fills a go.mod template: @KUBERNETES_VERSION@ @ETCD_VERSION@ @GOVMOMI_VERSION@ @COREDNS_VERSION@ inline;
# a line that is only @GO_DIRECTIVES@ or @REPLACES@ becomes the text in that variable.
render() { # template > go.mod
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      @GO_DIRECTIVES@) printf '%s\n' "$GO_DIRECTIVES" ;;
      @REPLACES@) printf '%s\n' "$REPLACES" ;;
      *)
        line=${line//@KUBERNETES_VERSION@/$KUBERNETES_VERSION}
        line=${line//@ETCD_VERSION@/$ETCD_VERSION}
        line=${line//@GOVMOMI_VERSION@/$GOVMOMI_VERSION}
        line=${line//@COREDNS_VERSION@/$COREDNS_VERSION}
        printf '%s\n' "$line"
        ;;
    esac
  done <"$1"
}

# Where a program is already: prebuilt at the top of the cache, or built before.
present() { # dir name
  [ -x "$CACHE/$2" ] || [ -x "$1/$2" ]
}

report_present() { # dir name
  local dir=$1 name=$2
  if [ -x "$CACHE/$name" ]; then
    say "prebuilt $name -> $CACHE/$name"
  else
    say "cached  $name: $(head -n 1 "$dir/$name.source" 2>/dev/null || echo 'origin unknown')" \
      "($(sed -n 's/^built .* in \([0-9]*\) s.*/built in \1 s/p' "$dir/$name.source" 2>/dev/null)) -> $dir/$name"
  fi
}

# Runs a group's preparation (download, go.mod, go mod tidy), then one go build per missing
# program, so that each gets its own time and its own failure. Later builds in a group reuse
# the Go build cache of the earlier ones: their time is what they add.
build_group() { # dir what prepare-function builder-function names...
  local dir=$1 what=$2 prepare=$3 builder=$4
  shift 4
  local missing=() name
  for name in "$@"; do
    if present "$dir" "$name"; then report_present "$dir" "$name"; else missing+=("$name"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  mkdir -p "$dir" "$LOGS" "$WORK"
  local tmp="$dir/.partial" log start secs
  rm -rf "$tmp" && mkdir -p "$tmp"
  log="$LOGS/$(basename "$dir")-prepare.log"
  start=$SECONDS
  say "prepare $what (download, go mod tidy) for ${missing[*]} ..."
  if ! "$prepare" >"$log" 2>&1; then
    local reason
    reason="$(last_error "$log") (log: $log)"
    for name in "${missing[@]}"; do fail "$dir" "$name" "$what" "$reason"; done
    return 1
  fi
  say "        prepared in $((SECONDS - start)) s"
  for name in "${missing[@]}"; do
    log="$LOGS/$(basename "$dir")-$name.log"
    start=$SECONDS
    if "$builder" "$tmp" "$name" >"$log" 2>&1 && [ -x "$tmp/$name" ]; then
      secs=$((SECONDS - start))
      install_built "$tmp" "$dir" "$name" "$what (Go module)" "$secs"
    else
      fail "$dir" "$name" "$what" "$(last_error "$log") (log: $log)"
    fi
  done
  rm -rf "$tmp"
}

# ---- Kubernetes ----------------------------------------------------------------------

prepare_kubernetes() {
  local work="$WORK/kubernetes-$KUBERNETES_VERSION" json k8smod staging error
  mkdir -p "$work" && cd "$work" || return 1
  rm -f go.mod
  # k8s.io/kubernetes's own go.mod: its go/godebug lines and its list of staging modules
  json=$("$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")
  k8smod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  if [ ! -f "$k8smod" ]; then
    error=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p')
    echo "go mod download k8s.io/kubernetes@$KUBERNETES_VERSION: ${error:-no go.mod}"
    return 1
  fi
  staging="v0.${KUBERNETES_VERSION#v1.}"
  GO_DIRECTIVES=$(grep -E '^(go|godebug|toolchain) ' "$k8smod")
  REPLACES=$("$HERE/gen-replace.sh" "$k8smod" "$staging") || return 1
  render "$HERE/gomod/kubernetes.go.mod.in" >go.mod
  "$GO" mod tidy
}

build_kubernetes() { # tmpdir name
  local tmp=$1 name=$2 v=$KUBERNETES_VERSION major minor date ld pkg
  major=${v#v} && major=${major%%.*}
  minor=${v#v*.} && minor=${minor%%.*}
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ld=$LDFLAGS_BASE
  # what `kube-apiserver --version`, /version and kubeadm's version checks report
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  cd "$WORK/kubernetes-$KUBERNETES_VERSION" &&
    "$GO" build -p 2 -ldflags "$ld" -o "$tmp/$name" "k8s.io/kubernetes/cmd/$name"
}

# ---- etcd ----------------------------------------------------------------------------

prepare_etcd() {
  local work="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$work" && cd "$work" || return 1
  render "$HERE/gomod/etcd.go.mod.in" >go.mod
  "$GO" mod tidy
}

build_etcd() { # tmpdir name
  local tmp=$1 name=$2 pkg
  case $name in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;; # the server's main package is the module root
    *) pkg=go.etcd.io/etcd/$name/v3 ;;
  esac
  cd "$WORK/etcd-$ETCD_VERSION" && "$GO" build -p 2 -ldflags "$LDFLAGS_BASE" -o "$tmp/$name" "$pkg"
}

# ---- vcsim ---------------------------------------------------------------------------

prepare_vcsim() {
  local work="$WORK/vcsim-$GOVMOMI_VERSION"
  if [ "${NSXKUBE_VCSIM_SOURCE:-}" = debian ]; then
    echo "NSXKUBE_VCSIM_SOURCE=debian: not building from the Go module"
    return 1
  fi
  mkdir -p "$work" && cd "$work" || return 1
  cp "$HERE/vcsim/main.go" main.go
  render "$HERE/gomod/vcsim.go.mod.in" >go.mod
  "$GO" mod tidy
}

build_vcsim() { # tmpdir name
  cd "$WORK/vcsim-$GOVMOMI_VERSION" && "$GO" build -p 2 -ldflags "$LDFLAGS_BASE" -o "$1/$2" .
}

# Debian's govmomi source in GOPATH mode: for machines that cannot reach the Go module proxy.
build_vcsim_debian() {
  local dir=$VCSIM_DEBIAN_DIR work="$WORK/vcsim-debian" log="$LOGS/vcsim-debian.log" start=$SECONDS
  if [ -x "$dir/vcsim" ]; then
    report_present "$dir" vcsim
    return 0
  fi
  mkdir -p "$dir" "$work" "$LOGS"
  say "vcsim: trying the fallback, Debian's golang-github-vmware-govmomi-dev in GOPATH mode ..."
  {
    if [ ! -d "$DEBIAN_GOPATH/src/github.com/vmware/govmomi/simulator" ]; then
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends golang-github-vmware-govmomi-dev ||
          { apt-get update && apt-get install -y --no-install-recommends golang-github-vmware-govmomi-dev; }
      else
        echo "golang-github-vmware-govmomi-dev is not installed (apt-get install it as root)"
      fi
    fi
    cp "$HERE/vcsim/main.go" "$work/main.go" &&
      cd "$work" &&
      GO111MODULE=off GOPATH=$DEBIAN_GOPATH "$GO" build -p 2 -ldflags "$LDFLAGS_BASE" -o "$dir/vcsim.new" main.go &&
      mv -f "$dir/vcsim.new" "$dir/vcsim"
  } >"$log" 2>&1
  if [ -x "$dir/vcsim" ]; then
    rm -f "$dir/vcsim.failed"
    printf 'govmomi %s (Debian fallback)\nbuilt %s in %s s with %s\n' "$GOVMOMI_DEBIAN_VERSION" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((SECONDS - start))" "$("$GO" version)" >"$dir/vcsim.source"
    say "built   vcsim: govmomi $GOVMOMI_DEBIAN_VERSION (Debian fallback), $((SECONDS - start)) s -> $dir/vcsim"
    return 0
  fi
  fail "$dir" vcsim "Debian govmomi $GOVMOMI_DEBIAN_VERSION" "$(last_error "$log") (log: $log)"
  return 1
}

# ---- CoreDNS -------------------------------------------------------------------------

prepare_coredns() {
  local work="$WORK/coredns-$COREDNS_VERSION" json
  mkdir -p "$work" && cd "$work" || return 1
  # the tag's commit, which upstream's build stamps into `coredns -version`
  json=$("$GO" mod download -json "github.com/coredns/coredns@$COREDNS_VERSION") || { printf '%s\n' "$json"; return 1; }
  printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]\{12\}\).*/\1/p' | head -n 1 >gitcommit
  cp "$HERE/coredns/main.go" main.go
  render "$HERE/gomod/coredns.go.mod.in" >go.mod
  "$GO" mod tidy
}

build_coredns() { # tmpdir name
  local work="$WORK/coredns-$COREDNS_VERSION" commit
  commit=$(cat "$work/gitcommit" 2>/dev/null)
  cd "$work" && "$GO" build -p 2 -ldflags "$LDFLAGS_BASE -X github.com/coredns/coredns/coremain.GitCommit=${commit:-unknown}" \
    -o "$1/$2" .
}

# A program built from our own main.go is stale once that file changes: removed, so it is rebuilt.
drop_if_stale() { # main.go name dirs...
  local main_sum d
  main_sum=$(sha256sum "$1" | cut -d' ' -f1)
  for d in "${@:3}"; do
    if [ -x "$d/$2" ] && [ "$(cat "$d/$2.main.sha256" 2>/dev/null)" != "$main_sum" ]; then
      say "stale   $2 in $d: $(basename "$HERE")/${1#"$HERE/"} changed since it was built"
      rm -f "$d/$2"
    fi
  done
}

record_main() { # main.go name dirs...
  local main_sum d
  main_sum=$(sha256sum "$1" | cut -d' ' -f1)
  for d in "${@:3}"; do
    if [ -x "$d/$2" ]; then printf '%s\n' "$main_sum" >"$d/$2.main.sha256"; fi
  done
}

# ---- main ----------------------------------------------------------------------------

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  # shellcheck disable=SC2206 # a space-separated list of names, split on purpose
  names=("${DEFAULT_NAMES[@]}" ${NSXKUBE_TEST_BIN_EXTRA:-})
elif [ "${names[*]}" = all ]; then
  names=("${KUBE_NAMES[@]}" "${ETCD_NAMES[@]}" vcsim coredns)
elif [ "${names[*]}" = nodes ]; then
  names=("${KUBE_NAMES[@]}" "${ETCD_NAMES[@]}" coredns)
fi
kube=() etcd=() vcsim=0 coredns=0
for n in "${names[@]}"; do
  case " ${KUBE_NAMES[*]} " in *" $n "*) kube+=("$n"); continue ;; esac
  case " ${ETCD_NAMES[*]} " in *" $n "*) etcd+=("$n"); continue ;; esac
  if [ "$n" = vcsim ]; then vcsim=1; continue; fi
  if [ "$n" = coredns ]; then coredns=1; continue; fi
  echo "build.sh: unknown program '$n' (known: ${KUBE_NAMES[*]} ${ETCD_NAMES[*]} vcsim coredns; groups: all nodes)" >&2
  exit 2
done

if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock -n 9 || { say "waiting for another build.sh using $CACHE ..."; flock 9; }
fi
if ! "$GO" version >/dev/null 2>&1; then
  say "no Go toolchain ($GO): set GO= or install Go 1.25+"
fi

say "test programs: cache $CACHE"
say "versions: Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, govmomi $GOVMOMI_VERSION, CoreDNS $COREDNS_VERSION ($(basename "$HERE")/versions.env)"
total_start=$SECONDS
FAILED=()

if [ ${#kube[@]} -gt 0 ]; then
  build_group "$KUBE_DIR" "k8s.io/kubernetes $KUBERNETES_VERSION" prepare_kubernetes build_kubernetes "${kube[@]}"
fi
if [ ${#etcd[@]} -gt 0 ]; then
  build_group "$ETCD_DIR" "go.etcd.io/etcd $ETCD_VERSION" prepare_etcd build_etcd "${etcd[@]}"
fi
if [ $vcsim -eq 1 ]; then
  drop_if_stale "$HERE/vcsim/main.go" vcsim "$VCSIM_DIR" "$VCSIM_DEBIAN_DIR"
  failed_before=${#FAILED[@]}
  if [ -x "$CACHE/vcsim" ] || [ -x "$VCSIM_DIR/vcsim" ]; then
    report_present "$VCSIM_DIR" vcsim
  else
    build_group "$VCSIM_DIR" "govmomi $GOVMOMI_VERSION" prepare_vcsim build_vcsim vcsim
    if [ ${#FAILED[@]} -gt "$failed_before" ]; then
      # the module build failed: the Debian build stands in for it
      if build_vcsim_debian; then
        FAILED=("${FAILED[@]:0:$failed_before}")
      else
        FAILED=("${FAILED[@]:0:$((failed_before + 1))}") # name it once
      fi
    fi
  fi
  record_main "$HERE/vcsim/main.go" vcsim "$VCSIM_DIR" "$VCSIM_DEBIAN_DIR"
fi
if [ $coredns -eq 1 ]; then
  drop_if_stale "$HERE/coredns/main.go" coredns "$COREDNS_DIR"
  build_group "$COREDNS_DIR" "github.com/coredns/coredns $COREDNS_VERSION" prepare_coredns build_coredns coredns
  record_main "$HERE/coredns/main.go" coredns "$COREDNS_DIR"
fi

say "done in $((SECONDS - total_start)) s; cache size $(du -sh "$CACHE" 2>/dev/null | cut -f1) (without Go's module and build caches)"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "not built: ${FAILED[*]} (the tests that need them are skipped with the reason above)"
  exit 1
fi
exit 0
