#!/usr/bin/env bash
# Start a real dockerd (no default bridge, no iptables: jobs run with --network none) and make
# sure the offline base image exists. Prints the DOCKER_HOST to use. Stop it with
# `kill $(cat $JJ_DOCKER_DIR/docker.pid)`.
set -euo pipefail
D=${JJ_DOCKER_DIR:-/tmp/jj-docker}
PY=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap >/dev/null
fi
mkdir -p "$D"
export DOCKER_HOST=unix://$D/docker.sock
if ! docker info >/dev/null 2>&1; then
    # A pidfile left by a dockerd that was killed (its pid may belong to another process now).
    if [ -f "$D/docker.pid" ] && [ "$(ps -o comm= -p "$(cat "$D/docker.pid")" 2>/dev/null)" != dockerd ]; then
        rm -f "$D/docker.pid"
    fi
    setsid dockerd --host "$DOCKER_HOST" --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/docker.pid" \
        --bridge=none --iptables=false --ip6tables=false >"$D/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { tail -n 20 "$D/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
fi
# The base image: debootstrap once, then re-import from the cached tarball (~/.cache/jupyter-jobs).
if ! docker image inspect jupyter-jobs/base:bookworm >/dev/null 2>&1; then
    "$PY" -m jupyter_jobs.cli image build >&2
fi
echo "$DOCKER_HOST"
