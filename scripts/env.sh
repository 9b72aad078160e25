# Source me: the project's venv, the ROS 2 workspace, and ROS 2 discovery fenced to this machine.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_root/.venv/bin/activate"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if [ -f "$_root/scripts/ros_env.sh" ] && [ -f "$_root/ros2_ws/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_root/scripts/ros_env.sh"
fi
unset _root
