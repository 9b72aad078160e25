#!/usr/bin/env bash
# Optional: create benchmarks/peers/.venv, the independent simulators' own environment, for
# benchmarks/peers/bench_peers.py. Needs network access (PyPI and PyTorch's CPU wheel index), about
# 1.5 GB of disk; the project's .venv is not touched. PYTHON=/path/to/python3.11 picks the interpreter;
# TORCH_INDEX overrides PyTorch's CPU wheel index (TORCH_INDEX= to use PyPI alone: its Linux torch wheel
# is the CUDA build, several GB, which runs on the CPU too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
"$python" -m venv "$here/.venv"
torch_index="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
"$here/.venv/bin/python" -m pip install --quiet ${torch_index:+--extra-index-url "$torch_index"} \
    -r "$here/requirements.txt" -c "$here/constraints.txt"
"$here/.venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch, spikingjelly.activation_based.neuron, sinabs.layers  # noqa: F401  (import check)
print("peers venv ready:", ", ".join(f"{p} {md.version(p)}" for p in ("torch", "spikingjelly", "sinabs", "numpy")),
      "| CUDA build" if torch.version.cuda else "| CPU build")
PY
