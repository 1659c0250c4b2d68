#!/usr/bin/env bash
# Installs every dependency of the build, the tests and the bindings on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config libdlpack-dev libcmocka-dev \
  swig golang-go bindgen clang libclang-rt-14-dev llvm valgrind >/dev/null
python3 -m pip install -q --disable-pip-version-check numpy pytest ml_dtypes
