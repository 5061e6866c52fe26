#!/usr/bin/env bash
# Creates bench/.venv: the separate environment for benchmarks that compare contrastkit with other libraries
# (bench/compare_lightly.py, and bench/losses.py's lightly column). lightly needs torchvision, which is never a
# dependency of contrastkit, so it lives here and not in .venv. Idempotent: rerun to repair or complete it.
#
#   bash scripts/bench_venv.sh            # torch 2.14.1 + torchvision 0.29.1 (the CUDA build, ~5.5 GB), lightly, contrastkit
#   PYTHON=python3.11 bash scripts/bench_venv.sh
#
# torch and torchvision are pinned through a constraints file for every later pip call, so installing lightly
# (or contrastkit, which asks torch>=2.13) can never replace them with another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=bench/.venv
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
LIGHTLY_VERSION=${LIGHTLY_VERSION:-1.6.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# pip's output goes to a log, shown (without the local index's "Location ... is ignored" noise) only on failure
pip() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >"$log" 2>&1 \
  || { grep -v "^WARNING: Location" "$log" >&2; exit 1; }; }
constraints="$VENV/bench-constraints.txt"
printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" > "$constraints"

echo "bench venv: torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
pip -q -c "$constraints" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
echo "bench venv: lightly $LIGHTLY_VERSION"
pip -q -c "$constraints" "lightly==$LIGHTLY_VERSION"
echo "bench venv: contrastkit (editable, from this checkout)"
pip -q -c "$constraints" -e .

# the pins held: fail loudly if anything replaced torch or torchvision
"$VENV/bin/python" - "$TORCH_VERSION" "$TORCHVISION_VERSION" <<'PY'
import sys
import torch, torchvision, lightly, contrastkit
want_torch, want_tv = sys.argv[1], sys.argv[2]
got_torch = torch.__version__.split("+")[0]
got_tv = torchvision.__version__.split("+")[0]
if (got_torch, got_tv) != (want_torch, want_tv):
    sys.exit(f"bench venv: expected torch {want_torch} / torchvision {want_tv}, found {got_torch} / {got_tv}")
print(f"bench venv ready: torch {torch.__version__} | torchvision {torchvision.__version__} | "
      f"lightly {lightly.__version__} | contrastkit {contrastkit.__version__} | CUDA available {torch.cuda.is_available()}")
PY
