#!/usr/bin/env bash
# A prepared GPU check (≤ 5 minutes) for when a GPU machine is lent: throughput per precision, and, with two or
# more GPUs, that 2 processes (torchrun, NCCL) train the same weights as 1 process with the same global batch.
#
#   bash bench/gpu_check.sh                 # on the GPU machine, from the repository root (after bootstrap)
#   DEVICE=cpu STEPS_MIN=0.2 bash bench/gpu_check.sh   # the same script on a CPU, as a smoke test
#
# Prints one line per check; exits non-zero when a check fails. Output goes to ${OUT:-/tmp/gpu_check}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
MINUTES=${STEPS_MIN:-0.5}
OUT=${OUT:-/tmp/gpu_check}
rm -rf "$OUT" && mkdir -p "$OUT"

"$PY" - "$OUT" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)   # 20k random 3×64×64 images with 10 labels: a throughput workload, not a benchmark of accuracy
x = rng.integers(0, 256, (20000, 3, 64, 64), dtype=np.uint8)
np.savez(sys.argv[1] + "/images.npz", x=x, y=rng.integers(0, 10, 20000))
PY
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| GPUs', torch.cuda.device_count())"

common=(--data "$OUT/images.npz" --batch-size 256 --evaluate false --monitor-every 0 --no-progress --device "$DEVICE")
for precision in fp32 bf16; do
  "$PY" -m contrastkit pretrain "${common[@]}" --minutes "$MINUTES" --precision "$precision" --out "$OUT/speed-$precision" >/dev/null
  "$PY" - "$OUT/speed-$precision/metrics.csv" "$precision" <<'PY'
import csv, math, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ips = statistics.median(float(r["img_per_s"]) for r in rows[len(rows) // 2:])
loss = float(rows[-1]["loss"])
print(f"throughput {sys.argv[2]}: {ips:,.0f} img/s (median of the second half), final loss {loss:.4f}")
sys.exit(0 if math.isfinite(loss) else 1)
PY
done

gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$DEVICE" = cuda ] && [ "$gpus" -ge 2 ]; then
  eq=(--epochs 1 --precision fp32 --sync-bn true --encoder mlp --encoder-kwargs "{width: 64, depth: 2, out_dim: 32, norm: batch}")
  "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m contrastkit pretrain "${common[@]}" "${eq[@]}" --out "$OUT/two" >/dev/null
  "$PY" -m contrastkit pretrain "${common[@]}" "${eq[@]}" --out "$OUT/one" >/dev/null
  "$PY" - "$OUT" <<'PY'
import sys, torch
a = torch.load(sys.argv[1] + "/two/encoder.pt", weights_only=True)["encoder"]
b = torch.load(sys.argv[1] + "/one/encoder.pt", weights_only=True)["encoder"]
worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"2 GPUs = 1 GPU: largest weight difference after one epoch {worst:.2e}")
sys.exit(0 if worst < 1e-3 else 1)
PY
else
  echo "2 GPUs = 1 GPU: skipped ($gpus GPU(s) on $DEVICE)"
fi
