# Source this file (bash) to use the ROS 2 workspace from the project's venv:
#   source scripts/ros_env.sh
# Sets the mandatory network fence (LOCALHOST discovery, a fixed domain id; override ROS_DOMAIN_ID
# before sourcing to pick another), the venv, and the colcon workspace overlay.
_ase_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ase_venv="${VIRTUAL_ENV:-$_ase_root/.venv}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export VIRTUAL_ENV="$_ase_venv"
export PATH="$_ase_venv/bin:$PATH"
export AMENT_PREFIX_PATH="$_ase_venv" CMAKE_PREFIX_PATH="$_ase_venv"
if [ -f "$_ase_root/ros2_ws/install/setup.bash" ]; then
  # setup.bash reads unset variables; keep callers running with `set -u` working.
  case $- in *u*) _ase_u=1; set +u ;; *) _ase_u=0 ;; esac
  # shellcheck disable=SC1091
  source "$_ase_root/ros2_ws/install/setup.bash"
  [ "$_ase_u" = 1 ] && set -u
  unset _ase_u
else
  echo "warning: $_ase_root/ros2_ws/install is missing; run scripts/build_ros_ws.sh" >&2
fi
unset _ase_root _ase_venv
