#!/usr/bin/env bash
# Runs a command against a newer lavapipe (Mesa from Debian bookworm-backports) without
# installing it: the packages are unpacked under target/mesa-bpo and selected with
# VK_DRIVER_FILES. Debian 12's own Mesa 22.3 lowers every shader load inside a loop to a
# scalar loop over the SIMD lanes; Mesa 24+ uses gathers, so kernel timings differ a lot.
# Usage: benches/with_newer_lavapipe.sh benches/compare_openblas.sh --backend vulkan
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/target/mesa-bpo
if [ ! -e "$root/lvp.json" ]; then
  mkdir -p "$root/lists/partial" "$root/debs" "$root/root"
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$root/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$root/sources.list" -o "Dir::Etc::sourceparts=-"
            -o "Dir::State::Lists=$root/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$root/debs" && apt-get "${apt_opts[@]}" download \
      mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports \
      libdrm-amdgpu1/bookworm-backports)
  for f in "$root"/debs/*.deb; do dpkg -x "$f" "$root/root"; done
  lib=$(find "$root/root" -name libvulkan_lvp.so | head -n 1)
  sed "s|\"library_path\": \"[^\"]*\"|\"library_path\": \"$lib\"|" \
    "$root"/root/usr/share/vulkan/icd.d/lvp_icd*.json > "$root/lvp.json"
fi
export VK_DRIVER_FILES="$root/lvp.json"
export LD_LIBRARY_PATH="$root/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
