#!/usr/bin/env bash
# Train and convert the models that benchmarks and docs measure besides the bundled one, deterministically
# (seeded, TF op determinism), from the offline MNIST copy. Usage: scripts/make_models.sh [OUT_DIR] [NAME...]
#   conv-mnist: the paper's conv MNIST layout (default `--arch conv`: 32-32-pool-64-64-pool-256-10), 4 epochs,
#               converted with V0 = 0.5 (layer-wise 99.9th percentile) -> OUT_DIR/conv-mnist/snn
#   dense-mnist: 784-1200-1200-10, 4 epochs -> OUT_DIR/dense-mnist/snn (the plain conversion, before optimization)
# A finished model is kept (delete its directory to retrain). Takes ~10-20 min per model on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-runs/models}"
shift || true
names=("$@")
[ "${#names[@]}" -gt 0 ] || names=(conv-mnist)
export TF_CPP_MIN_LOG_LEVEL=3
for name in "${names[@]}"; do
  case "$name" in
    conv-mnist) arch=conv ;;
    dense-mnist) arch=dense ;;
    *) echo "make_models: unknown model '$name' (conv-mnist, dense-mnist)" >&2; exit 2 ;;
  esac
  dir="$out/$name"
  if [ -f "$dir/snn/manifest.json" ]; then
    echo "make_models: $dir/snn exists, kept"
    continue
  fi
  mkdir -p "$dir"
  [ -f "$dir/ann.keras" ] || .venv/bin/anytime-snn train --arch "$arch" --dataset mnist --epochs 4 --seed 0 \
    --out "$dir/ann.keras"
  .venv/bin/anytime-snn convert "$dir/ann.keras" --out "$dir/snn" --v0 0.5 --evaluate 1000 --evaluate-steps 100
  echo "make_models: $dir/snn"
done
