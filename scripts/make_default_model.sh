#!/usr/bin/env bash
# Regenerate the bundled default model, models/default/, with the documented commands:
# dense MNIST 784-1200-1200-10 (Dense-BN-ReLU-Dropout blocks, SGD, 40 epochs, +-2 px shifts), converted with
# layer-wise 99.9th-percentile normalization, V0 = 0.5 in the hidden layers, 50 timesteps, labels "0".."9",
# evaluated on the full MNIST test set (result in the bundle's provenance), and given per-timestep
# confidence calibration fitted on 2000 images of the held-out validation part of the training split.
# About 10-20 minutes on 2 CPU cores. Intermediate files go to $WORK (default runs/default, git-ignored).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cli="${ANYTIME_SNN:-$root/.venv/bin/anytime-snn}"
work="${WORK:-$root/runs/default}"
threads="${THREADS:-2}"
mkdir -p "$work"

"$cli" data fetch mnist --quiet
"$cli" train --arch dense --dataset mnist --epochs 40 --seed 0 --threads "$threads" --quiet \
  --out "$work/dense_mnist.keras"
"$cli" convert "$work/dense_mnist.keras" --out "$root/models/default" --normalization layer --percentile 99.9 \
  --v0 0.5 --timesteps 50 --calibration-samples 10000 --evaluate 10000 --evaluate-steps 100 --threads "$threads"
"$cli" calibrate "$root/models/default" --holdout 0.1 --seed 0 --limit-holdout 2000
echo "models/default regenerated (training record: $work/dense_mnist.json)"
