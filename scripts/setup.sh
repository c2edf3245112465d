#!/usr/bin/env bash
# Sets up everything callapp needs on a Debian machine: the system libraries
# (Qt, Xvfb), a virtual environment in .venv and the package with its
# development extras. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages. Qt's offscreen and xcb platforms need these libraries;
# Xvfb gives the screenshot scripts a real X display.
DEBIAN_PACKAGES=(
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0
  libxkbcommon-x11-0 xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0 libxcb-shape0
  libxcb-randr0 libxcb-xkb1 libxcb-xfixes0 chromium
  # Sound (sounddevice loads PortAudio; the audio tests play into ALSA's
  # "null" device, which needs no sound card and no sound server).
  libportaudio2
  # Screen-sharing tests draw on Xvfb's root window and add RandR monitors
  # through these (mss itself needs only libxcb).
  libx11-6 libxrandr2
  # Real parts the network, scale-out and installer tests start themselves:
  # namespaces and veth (iproute2, ethtool for checksum offload), a TURN relay,
  # Redis, a reverse proxy, a fresh Debian root for the .deb and AppImage
  # checks and the .desktop validator. None of them is left running.
  iproute2 ethtool coturn redis-server nginx-light mmdebstrap desktop-file-utils
  squashfs-tools
  # The AppImage's own runtime (packaging/appimage/runtime.c) is built
  # statically against Debian's squashfuse and libfuse3 (packaging/appimage.py).
  gcc libc6-dev libsquashfuse-dev libfuse3-dev libzstd-dev liblzma-dev liblz4-dev
  liblzo2-dev zlib1g-dev binutils
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # The tests start Redis, coturn and nginx themselves on 127.0.0.1; a
  # policy-rc.d answering 101 keeps their packages from starting system-wide
  # copies on install (only when no policy is in place already).
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -z "$policy" ] || $sudo rm -f "$policy"
fi

# Python environment. Reinstall only when pyproject.toml changed.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.callapp-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
