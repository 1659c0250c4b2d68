#!/usr/bin/env bash
# The README's first command: installs every dependency, builds libmhc (with the CUDA backend
# when a CUDA toolkit is found), installs it into build/prefix and runs the C layer-loop
# example on the CPU backend, then on the GPU when one is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
cmake --install build --prefix build/prefix >/dev/null
echo "== layer loop, CPU backend (DeepSeek-V4-Flash width, 2 layers)"
./build/examples/c/layer_loop --tokens 4 --hidden 4096 --layers 2
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "== layer loop, CUDA backend"
  ./build/examples/c/layer_loop --tokens 4 --hidden 4096 --layers 2 --cuda
else
  echo "(no GPU found: skipping the --cuda run)"
fi
