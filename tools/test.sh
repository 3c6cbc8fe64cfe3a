#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs the whole test suite with ctest.
# Usage: tools/test.sh [extra ctest args]   (KEYFLOW_BUILD_DIR overrides the build dir)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KEYFLOW_BUILD_DIR:-$ROOT/build}
JOBS=$(nproc)

"$ROOT/tools/install-deps.sh"
start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD" -j "$JOBS"
echo "test.sh: build took $(( $(date +%s) - start )) s"
cd "$BUILD"
ctest --output-on-failure --timeout 900 -j "$JOBS" "$@"
echo "test.sh: build + tests took $(( $(date +%s) - start )) s"
