#!/usr/bin/env bash
# Installs gptx's build dependencies from Debian 12 (when missing) and builds the release preset.
# Usage: tools/setup.sh [preset]   (run as root, or with sudo, the first time)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
pkgs=(build-essential cmake python3 libxsimd-dev libboost-test-dev libcli11-dev nlohmann-json3-dev pkg-config libpcre2-dev libutf8proc-dev
      libopenmpi-dev openmpi-bin) # OpenMPI: optional data-parallel training (include/gptx/dist/)
# Headless Chromium renders the `gptx report` page in its test (skipped when absent).
pkgs+=(chromium)
pkgs+=(tmux) # the interactive gptx chat test (tests/chat/test_chat_tmux.sh)
# The sanitizer and fuzz presets build with clang: its -O1 ASan + UBSan build of the unit tests
# took 347 s wall against GCC's 483, and their run 54 s against 172 (issue #18).
case $preset in
  asan-ubsan | fuzz) pkgs+=(clang libclang-rt-14-dev libomp-dev) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "== configuring and building preset '$preset'"
cmake --preset "$preset"
cmake --build --preset "$preset"
