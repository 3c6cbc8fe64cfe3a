#!/usr/bin/env bash
# The one list of Debian packages Keyflow needs to build, test and run.
# Idempotent, needs no input, and does nothing when everything is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config clang-format
  libcaf-dev librdkafka-dev librocksdb-dev libprotobuf-dev libprotoc-dev protobuf-compiler
  libhiredis-dev prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libspdlog-dev libfmt-dev libcpp-httplib-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server kcat prometheus curl procps
  python3 python3-protobuf python3-confluent-kafka python3-redis
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps prometheus from pulling in ~60 unrelated packages.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
