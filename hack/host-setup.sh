#!/usr/bin/env bash
# What a real node needs from the host (Debian, root): the container runtime, CNI plugins,
# iptables, debootstrap and a C compiler for the images, and a running Docker engine to build
# the project image from its Dockerfile. Idempotent: installs only what is missing and starts
# dockerd only when no engine answers.
set -euo pipefail
packages=(docker.io containerd runc containernetworking-plugins iptables conntrack debootstrap gcc libc6-dev)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: /var/log/wacluster-dockerd.log)"
    nohup dockerd >/var/log/wacluster-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/wacluster-dockerd.log"; exit 1; }
fi
