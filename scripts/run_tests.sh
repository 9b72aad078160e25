#!/usr/bin/env bash
# Run the test suite (after ./run setup). Extra arguments go to pytest, e.g. `-k bundle` or `tests/test_metrics.py`;
# pytest.ini limits collection to tests/ and each test's time (pytest-timeout).
# With CI set (as .ci/run does), a skipped test fails: see tests/conftest.py and scripts/check_backends.sh.
# Exit status: pytest's, except that "no tests collected" (pytest exit 5) is a failure here.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# ROS 2 processes started by tests stay on this machine, in a fixed domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-73}"
export TF_CPP_MIN_LOG_LEVEL=3
export PYTHONDONTWRITEBYTECODE=1
if [ -f scripts/ros_env.sh ] && [ -f ros2_ws/install/setup.bash ]; then
  # shellcheck disable=SC1091
  source scripts/ros_env.sh
fi
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests: pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$rc"
