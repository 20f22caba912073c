#!/usr/bin/env bash
# Installs what diffreg needs when it is missing: Debian packages (libtorch, OpenBLAS),
# npm packages (npm ci) and the native libtorch addon. Idempotent: does nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] FAILED: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages given that are not installed yet; $1 says what they are for.
apt_install() {
  local why=$1 missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing Debian packages: ${missing[*]} ($why)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  command -v apt-get >/dev/null || fail "apt-get not found: install ${missing[*]} by hand (Debian 12 package names)"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/diffreg-apt.log 2>&1; then
    say "apt-get install failed; refreshing the package lists and trying once more"
    $SUDO apt-get update >>/tmp/diffreg-apt.log 2>&1 || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/diffreg-apt.log 2>&1 \
      || fail "apt-get could not install ${missing[*]}; see /tmp/diffreg-apt.log"
  fi
}

# 1. Debian packages. libtorch-dev is the tensor engine; libopenblas0-pthread keeps matmul off the
# reference BLAS (measured 60x slower here).
apt_install "needed for the libtorch engine" libtorch-dev libopenblas0-pthread g++ make python3

# Only when asked (DIFFREG_WITH_CHROMIUM=1, about 300 MB): Debian's chromium, for the browser tests of
# `diffreg view` (test/viewer/browser.test.ts), which are skipped with a message without it.
if [ "${DIFFREG_WITH_CHROMIUM:-0}" = 1 ]; then
  apt_install "the viewer's browser tests" chromium
fi

# 2. npm packages, when package-lock.json changed since the last install.
stamp=node_modules/.diffreg-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-fund --no-audit >/tmp/diffreg-npm.log 2>&1 || fail "npm ci failed; see /tmp/diffreg-npm.log"
  echo "$want" >"$stamp"
fi

# 3. The native addon, when missing or older than its sources.
addon=build/Release/diffreg_torch.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]; then
  say "building the native libtorch addon (about a minute)"
  npx --no-install node-gyp rebuild >/tmp/diffreg-gyp.log 2>&1 || { tail -20 /tmp/diffreg-gyp.log >&2; fail "native build failed; see /tmp/diffreg-gyp.log"; }
fi
