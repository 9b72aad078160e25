#!/usr/bin/env bash
# Check that every back end, data set and tool the test suite needs is here (after ./run setup): one line each,
# "ok" or "MISSING" with how to get it. Exit status 1 if anything is missing. .ci/run runs this before the tests,
# where a missing one would otherwise show up only as a test that fails in CI instead of skipping (tests/conftest.py).
# Each check is the one the tests themselves make (the same import, file or probe).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="$root/.venv/bin/python"
if [ ! -x "$py" ]; then
  echo "check_backends: no venv at $root/.venv: run ./run setup" >&2
  exit 1
fi
missing=0
check() {  # check NAME HINT COMMAND...: runs COMMAND quietly; ok if it exits 0
  local name="$1" hint="$2"
  shift 2
  local err
  if err="$("$@" 2>&1 >/dev/null)"; then
    printf '  ok       %s\n' "$name"
  else
    printf '  MISSING  %s: %s\n' "$name" "$hint"
    [ -n "$err" ] && printf '           %s\n' "$(printf '%s' "$err" | tail -n 1)"
    missing=$((missing + 1))
  fi
}
pyimport() { TF_CPP_MIN_LOG_LEVEL=3 "$py" -c "import $1"; }
pip_extra="./run setup (pip install -e 'offline[tf,opt,mpi,plot,cli,dev]')"
pynn="./run setup (pip install -r scripts/pynn-requirements.txt)"

echo "check_backends: what the test suite needs"
check "TensorFlow + Keras" "$pip_extra" pyimport "tensorflow, keras"
check "NLopt" "$pip_extra" pyimport nlopt
check "mpi4py" "$pip_extra" pyimport mpi4py
check "mpiexec (in the venv)" "$pip_extra (mpich)" test -x "$root/.venv/bin/mpiexec"
check "atheris" "$pip_extra" pyimport atheris
for backend in nest brian2 spinnaker; do
  check "PyNN back end $backend" "$pynn" "$py" -c "from anytime_snn.export import import_backend; import_backend('$backend')"
done
check "MNIST (cached)" "anytime-snn data fetch mnist" \
  "$py" -c "from anytime_snn.data import mnist; assert mnist.is_cached(), f'not in {mnist.mnist_dir()}'"
check "Fashion-MNIST" "apt-get install dataset-fashion-mnist" \
  test -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
check "ROS 2 workspace (built)" "scripts/build_ros_ws.sh" \
  "$py" -c "import sys; sys.path.insert(0, 'tests/ros'); from sandbox import workspace_missing as m; sys.exit(m())"
check "ROS 2 workspace (imports)" "scripts/build_ros_ws.sh" \
  bash -c "source scripts/ros_env.sh >/dev/null && python -c 'import rclpy, spike_perception, spike_perception_interfaces'"
check "unshare sandbox of the ROS tests" "unshare -n -m -p needs user namespaces (e.g. sysctl kernel.unprivileged_userns_clone=1)" \
  "$py" -c "import sys; sys.path.insert(0, 'tests/ros'); from sandbox import unshare_works; sys.exit(not unshare_works())"
if [ "$missing" -gt 0 ]; then
  echo "check_backends: $missing missing" >&2
  exit 1
fi
echo "check_backends: all present"
