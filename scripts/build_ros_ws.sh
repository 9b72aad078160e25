#!/usr/bin/env bash
# Build the ROS 2 workspace (ros2_ws: spike_perception_interfaces + spike_perception) with colcon,
# using ROS 2 Kilted from the PyPI wheels in the project's venv (no ROS installation needed).
#
#   scripts/build_ros_ws.sh                build when the sources changed (quick no-op otherwise)
#   scripts/build_ros_ws.sh --force        rebuild from scratch
#   scripts/build_ros_ws.sh --prefix DIR   build into DIR/{build,install,log} instead (a fresh install prefix)
#
# Result: ros2_ws/install (merged). Use it with `source scripts/ros_env.sh`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VIRTUAL_ENV:-$root/.venv}"
ws="$root/ros2_ws"
log() { printf '\033[1m[build_ros_ws]\033[0m %s\n' "$*" >&2; }

force=0
out="$ws"
case "${1:-}" in
  --force) force=1 ;;
  --prefix) [ -n "${2:-}" ] || { echo "usage: $0 --prefix DIR" >&2; exit 2; }
            mkdir -p "$2"; out="$(cd "$2" && pwd)" ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--force | --prefix DIR]" >&2; exit 2 ;;
esac

py="$venv/bin/python"
if [ ! -x "$py" ]; then
  echo "error: no Python venv at $venv; run scripts/bootstrap.sh first" >&2
  exit 1
fi
if [ ! -x "$venv/bin/colcon" ]; then
  echo "error: colcon is not installed in $venv; run scripts/bootstrap.sh (it installs scripts/ros-requirements.txt)" >&2
  exit 1
fi

# Skip when neither the package sources, the bundled model (installed with the package), this script nor the
# interpreter changed.
stamp_file="$out/install/.build-stamp"
stamp="$( (cd "$ws/src" && find -L . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum;
           sha256sum "$root"/models/default/*; sha256sum "$root/scripts/build_ros_ws.sh";
           "$py" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
if [ "$force" = 0 ] && [ -f "$out/install/setup.bash" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
  log "ros2_ws is up to date"
  exit 0
fi

# The wheels' exported CMake files name the include directories of the machine that built them
# (/opt/python/cp311-cp311/...); point them at this interpreter's Python and NumPy headers.
"$py" - "$venv" <<'PY'
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
pat_np = re.compile(r'[^";\s]*/numpy/(?:_core|core)/include')
pat_py = re.compile(r'/opt/python/[^/";\s]+/include/python3\.\d+')
changed = 0
for f in (venv / "share").rglob("*.cmake"):
    text = f.read_text(errors="surrogateescape")
    if "/include" not in text:
        continue
    new = pat_py.sub(py_inc, pat_np.sub(np_inc, text))
    if new != text:
        f.write_text(new, errors="surrogateescape")
        changed += 1
if changed:
    print(f"[build_ros_ws] rewrote include paths in {changed} CMake files", file=sys.stderr)
PY

export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
# colcon only builds here; nothing starts a ROS context, but keep the network fence anyway.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export MAKEFLAGS="${MAKEFLAGS:--j2}"
unset COLCON_PREFIX_PATH
if [ "$force" = 1 ]; then
  rm -rf "$out/build" "$out/install" "$out/log"
fi
log "building ros2_ws (colcon, ~30 s)"
mkdir -p "$out/log"
cd "$ws"
colcon --log-base "$out/log" build \
  --base-paths "$ws/src" --build-base "$out/build" --install-base "$out/install" \
  --merge-install --parallel-workers 1 --event-handlers console_direct- status- \
  --cmake-args -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
  >"$out/log/last_build.txt" 2>&1 || {
    tail -n 60 "$out/log/last_build.txt" >&2; echo "error: colcon build failed (full log: $out/log/last_build.txt)" >&2; exit 1; }
echo "$stamp" > "$stamp_file"
log "ros2_ws built: $out/install"
