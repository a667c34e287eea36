#!/usr/bin/env bash
# The newcomer's path, as the README's Quick start tells it: a fresh clone in a private (0700)
# directory, an empty HOME, then `make demo` and `make test`. The caches a previous run filled
# (the control plane binaries, Go's build and module caches, pip's downloads) are passed by
# their own variables, so a warm machine proves the path in minutes; a cold one builds once.
# Usage: hack/newcomer.sh [make targets...]   (default: demo test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo test)

cache=${WACLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wacluster}
gocache=$(go env GOCACHE)
gomodcache=$(go env GOMODCACHE)
pipcache=${PIP_CACHE_DIR:-$HOME/.cache/pip}

place=$(mktemp -d)   # 0700, like /root or any `mktemp -d`
home=$(mktemp -d)
trap 'rm -rf "$place" "$home"' EXIT
git clone --quiet "$repo" "$place/wacluster"
echo "newcomer: fresh clone in $place/wacluster ($(stat -c %a "$place")), HOME=$home (empty)"

cd "$place/wacluster"
for target in "${targets[@]}"; do
    started=$(date +%s)
    # The machine's environment stays (certificates, package indexes); only HOME is new.
    env HOME="$home" WACLUSTER_CACHE="$cache" GOCACHE="$gocache" GOMODCACHE="$gomodcache" PIP_CACHE_DIR="$pipcache" \
        make "$target"
    echo "newcomer: make $target passed in $(( $(date +%s) - started ))s"
done
