#!/usr/bin/env bash
# The ROS 2 demo: start the anytime classifier node from launch/spike_perception.launch.xml with the
# bundled model, stream real MNIST test digits to it, print the estimates as they arrive (confidence
# rising per timestep) and deadline-query answers; exit after a bounded time.
#
#   scripts/demo.sh                    12 digits at 4 fps (about 10 s with start-up)
#   scripts/demo.sh --frames 100 --fps 30 --seconds 120
#   scripts/demo.sh --model runs/my_bundle
#   scripts/demo.sh --no-isolate ...   do not wrap the demo in `unshare -n` (loopback-only namespace)
#
# Network: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and ROS_DOMAIN_ID (default 42) always; when run as
# root with unshare available, the demo also runs in its own network namespace with only `lo` and a
# private /dev/shm, so no DDS traffic or shared-memory file leaves it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
isolate=1
args=()
for a in "$@"; do
  case "$a" in
    --no-isolate) isolate=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exec "$root/.venv/bin/python" -m spike_perception.demo --help 2>/dev/null || exit 0 ;;
    *) args+=("$a") ;;
  esac
done

if [ ! -x "$root/.venv/bin/python" ]; then
  echo "demo: no .venv; run scripts/bootstrap.sh first" >&2
  exit 1
fi
"$root/scripts/build_ros_ws.sh" >&2
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
# shellcheck disable=SC1091
source "$root/scripts/ros_env.sh"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST PYTHONUNBUFFERED=1
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

run=("$root/.venv/bin/python" -m spike_perception.demo "${args[@]+"${args[@]}"}")
if [ "$isolate" = 1 ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -n -m -p -f --kill-child --mount-proc true 2>/dev/null; then
  exec unshare -n -m -p -f --kill-child --mount-proc sh -c \
    'ip link set lo up && mount -t tmpfs -o size=256m tmpfs /dev/shm && exec "$@"' sh "${run[@]}"
fi
exec "${run[@]}"
