#!/usr/bin/env bash
# Regenerates docs/configuration.md (every node option and pipeline key) with
# keyflow-config-reference, built from the tables in config/node_options.cpp and
# config/pipeline_keys.cpp.
#
# Usage: tools/gen-docs.sh           builds keyflow-config-reference, rewrites the doc
#        tools/gen-docs.sh --check   builds nothing; exit 1 (with a diff) if the doc is stale
# KEYFLOW_BUILD_DIR: the CMake build directory (default ./build).
# KEYFLOW_CONFIG_REFERENCE: the generator binary (default $KEYFLOW_BUILD_DIR/bin/...).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KEYFLOW_BUILD_DIR:-./build}
DOC="$ROOT/docs/configuration.md"
GEN=${KEYFLOW_CONFIG_REFERENCE:-$BUILD/bin/keyflow-config-reference}

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]   (KEYFLOW_BUILD_DIR: build directory, default ./build)" >&2
     exit 2 ;;
esac

if [ "$check" = 0 ]; then
  cmake --build "$BUILD" --target keyflow-config-reference
fi
if [ ! -x "$GEN" ]; then
  echo "gen-docs.sh: $GEN not found; build it: cmake --build $BUILD --target keyflow-config-reference" >&2
  exit 1
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$GEN" > "$tmp"

if [ "$check" = 1 ]; then
  if ! diff -u "$DOC" "$tmp" >&2; then
    echo >&2
    echo "docs/configuration.md is stale: it differs from what keyflow-config-reference prints" >&2
    echo "(lines with - are in the file, lines with + are generated). Regenerate and commit it:" >&2
    echo "    KEYFLOW_BUILD_DIR=$BUILD $ROOT/tools/gen-docs.sh" >&2
    exit 1
  fi
  echo "docs/configuration.md is up to date"
  exit 0
fi

if cmp -s "$tmp" "$DOC"; then
  echo "gen-docs.sh: $DOC is up to date"
else
  cp "$tmp" "$DOC"
  echo "gen-docs.sh: wrote $DOC"
fi
