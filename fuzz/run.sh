#!/usr/bin/env bash
# Longer coverage-guided fuzzing run of one harness (atheris / libFuzzer), niced.
#   fuzz/run.sh <image_convert|bundle_loader|core_validation> <seconds> [extra libFuzzer flags]
# The growing corpus and any crash/timeout/oom inputs go to $FUZZ_WORK/<target>/ (default
# /tmp/anytime-snn-fuzz); the seeds in fuzz/corpus/<target>/ are read, never written. A crash input
# replays with:  .venv/bin/python fuzz/fuzz_<target>.py <crash-file>
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: fuzz/run.sh <image_convert|bundle_loader|core_validation> <seconds> [libFuzzer flags]}"
seconds="${2:?usage: fuzz/run.sh <target> <seconds>}"
shift 2
harness="$root/fuzz/fuzz_${target}.py"
[ -f "$harness" ] || { echo "no harness $harness" >&2; exit 2; }
work="${FUZZ_WORK:-/tmp/anytime-snn-fuzz}/$target"
mkdir -p "$work/corpus" "$work/artifacts"
py="${PYTHON:-$root/.venv/bin/python}"
case "$target" in
  core_validation) max_len=512 ;;
  *) max_len=16384 ;;
esac
dict=()
[ -f "$root/fuzz/$target.dict" ] && dict=(-dict="$root/fuzz/$target.dict")
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONDONTWRITEBYTECODE=1
exec nice -n "${FUZZ_NICE:-10}" "$py" "$harness" "$work/corpus" "$root/fuzz/corpus/$target" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "${dict[@]}" "$@"
