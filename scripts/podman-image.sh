#!/usr/bin/env bash
# Builds deploy/Dockerfile with podman (Debian's package; no Docker engine
# needed) and checks the image by serving a demo world from it.
#
# Where the Dockerfile's base images (debian:bookworm-slim and
# golang:1.26-bookworm) cannot be pulled, it makes them locally first: the
# Debian one with debootstrap from this machine's own apt mirror, the Go one
# from it plus this machine's Go toolchain. The build mounts the host's CA
# bundle for its downloads (build arguments SSL_CERT_FILE and
# NODE_EXTRA_CA_CERTS), so a TLS-inspecting proxy in front of the package
# registries works inside it too.
#
#   scripts/podman-image.sh [TAG]     (default localhost/recsys:dev)
#
# PODMAN_GLOBAL holds podman's global flags; the default (runc with
# cgroupfs) is what a machine with hybrid cgroups needs, where crun
# refuses. PORT is the port the check serves on (default 18480).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/recsys:dev}
port=${PORT:-18480}
scripts/apt-install.sh podman:podman runc:runc debootstrap:debootstrap
read -r -a global <<<"${PODMAN_GLOBAL:---runtime runc --cgroup-manager cgroupfs}"
# Limits a container may not raise above the host's.
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
pm() { podman "${global[@]}" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { pm image exists "$1"; }
if ! have debian:bookworm-slim && ! pm pull -q debian:bookworm-slim >/dev/null 2>&1; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  echo "image: debian:bookworm-slim from debootstrap (minbase) and this machine's apt mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | pm import -q - localhost/debian:bookworm-slim >/dev/null
  rm -rf "$work/rootfs"
fi
if ! have golang:1.26-bookworm && ! pm pull -q golang:1.26-bookworm >/dev/null 2>&1; then
  goroot=$(go env GOROOT)
  echo "image: golang:1.26-bookworm from debian:bookworm-slim and this machine's $(go env GOVERSION) ($goroot)"
  mkdir -p "$work/go"
  cp -a "$goroot" "$work/go/go"
  cat >"$work/go/Containerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make git ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOPATH=/go
EOF
  pm build -q --pull=never --network=host "${limits[@]}" \
    -t localhost/golang:1.26-bookworm "$work/go" >/dev/null
  rm -rf "$work/go"
fi

echo "image: building $tag from deploy/Dockerfile"
start=$(date +%s)
ca=/etc/ssl/certs/ca-certificates.crt
pm build --pull=never --network=host "${limits[@]}" -v "$ca:/run/host-ca.crt:ro" \
  --build-arg SSL_CERT_FILE=/run/host-ca.crt --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt \
  -f deploy/Dockerfile -t "$tag" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
echo "image: built in $(($(date +%s) - start)) s, $(pm image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"

# The check: the image's binary and ONNX Runtime library generate, build and
# serve a small world as the image's non-root user, and answer a search.
user=$(pm image inspect --format '{{.Config.User}}' "$tag")
[ "$user" = 10001 ] || { echo "image: runs as user '$user', want 10001"; exit 1; }
pm run --rm "${limits[@]}" "$tag" --version
name=recsys-image-check-$$
pm run -d --name "$name" --network=host "${limits[@]}" \
  -e RECSYS_SERVER_ADDR=127.0.0.1:$port -e RECSYS_SERVER_ADMIN_ADDR=127.0.0.1:0 -e RECSYS_LOG_FORMAT=text \
  --entrypoint sh "$tag" -c 'recsys gen --items 1000 --out var/world >/dev/null &&
    recsys build --catalog var/world/catalog.jsonl >/dev/null && exec recsys serve' >/dev/null
trap 'pm rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { pm logs "$name" | tail -20; echo "image: not ready"; exit 1; }
hits=$(curl -sf -H 'Content-Type: application/json' -d '{"query":"wireless headphones","k":5}' \
  "http://127.0.0.1:$port/v1/search" | grep -o '"id":' | wc -l)
[ "$hits" -ge 5 ] || { echo "image: search answered $hits items, want 5"; exit 1; }
echo "image: $tag serves: /readyz ready, a search answered $hits items (user $user, ONNX Runtime inside)"
