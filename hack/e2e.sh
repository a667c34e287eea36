#!/usr/bin/env bash
# The end-to-end suite on real pods here: one real node beside the local control plane, the
# project image built from the Dockerfile on a Debian-made base, PostgreSQL from Debian's
# package and the local Cloud API (hack/images/cloudapi), then tests/e2e through
# WACLUSTER_KUBECONFIG. The environment is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
WAC=.venv/bin/wacluster
NAME=${WACLUSTER_E2E_ENV:-e2e}
started=$(date +%s)

hack/host-setup.sh
"$WAC" testenv down --name "$NAME" >/dev/null 2>&1 || true
"$WAC" testenv up --nodes real --no-postgres --name "$NAME"
trap '"$WAC" testenv down --name "$NAME"' EXIT
"$WAC" testenv images --name "$NAME" --tag e2e --extra-tag e2e-next
echo "e2e environment ready after $(( $(date +%s) - started ))s"

set +e
PATH="$("$WAC" testenv bin-dir):$PATH" \
WACLUSTER_KUBECONFIG="$("$WAC" testenv status --name "$NAME" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["kubeconfig"])')" \
WACLUSTER_E2E_IMAGE=wacluster:e2e WACLUSTER_E2E_NEXT_TAG=e2e-next \
WACLUSTER_E2E_POSTGRES_IMAGE=wacluster-postgres:15 \
WACLUSTER_E2E_CLOUDAPI_IMAGE=wacluster-cloudapi:e2e \
    .venv/bin/pytest -m e2e tests/e2e "$@"
status=$?
set -e
trap - EXIT
"$WAC" testenv down --name "$NAME"
# The node must leave the host as it found it: no mounts, shims, bridge or kube-proxy chains.
leftovers=$( { grep -c "/wacluster-testenv/$NAME/" /proc/self/mounts || true; } )
shims=$( { pgrep -fc "containerd-shim.*wacluster-testenv/$NAME/" || true; } )
if [ "$leftovers" != "0" ] || [ "$shims" != "0" ] || ip link show wac-cni0 >/dev/null 2>&1 \
        || iptables-save | grep -q "^:KUBE-SERVICES"; then
    echo "teardown left something behind: $leftovers mounts, $shims shims, bridge or KUBE chains"
    exit 1
fi
echo "e2e finished in $(( $(date +%s) - started ))s (pytest exit $status), host clean"
exit "$status"
