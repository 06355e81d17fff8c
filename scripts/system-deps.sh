#!/usr/bin/env bash
# Install the Debian packages Verifier needs when they are missing: libmagic (python-magic),
# nginx (the front of `make serve`), Chromium and ChromeDriver (browser tests and screenshots),
# Redis (shared rate limits), Tesseract (a second OCR reader for the card-masking tests).
# Idempotent; quiet when all present.
# `system-deps.sh run` checks only what serving needs (libmagic, nginx); no argument, everything.
set -euo pipefail
need=()
[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || ldconfig -p 2>/dev/null | grep -q libmagic.so.1 || need+=(libmagic1)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ "${1:-all}" != run ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
  # Tesseract's English model: the tests' and bench.cardmask's second reader of masked output.
  [ -e /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ] || need+=(tesseract-ocr)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "Please install as root: apt-get install ${need[*]}" >&2; exit 1; fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
