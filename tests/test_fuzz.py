"""Bounded coverage-guided fuzzing (atheris) of the image converter, the bundle loader and the node core's
request/parameter validation, plus replay of the seed corpora and of every input fuzzing ever broke.

Each harness (``fuzz/fuzz_<target>.py``) runs in its own process under libFuzzer for a few seconds
with an RSS limit and a per-input timeout: a crash, hang or memory blow-up fails the test with the
offending input saved. The longer documented run is ``fuzz/run.sh <target> <seconds>``
(docs/reliability.md has the numbers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
TARGETS = ("image_convert", "bundle_loader", "core_validation")
SECONDS = 4  # per target in CI; fuzz/run.sh for long runs
sys.path.insert(0, str(FUZZ))
import _common  # noqa: E402,F401  (the harnesses' import paths: the node's package from its source tree)


def _harness(target: str):
    return __import__(f"fuzz_{target}")


@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_run_finds_nothing(target, tmp_path):
    pytest.importorskip("atheris")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    cmd = [sys.executable, str(FUZZ / f"fuzz_{target}.py"), str(corpus), str(FUZZ / "corpus" / target),
           f"-max_total_time={SECONDS}", "-runs=200000", "-timeout=10", "-rss_limit_mb=1536",
           "-max_len=" + ("512" if target == "core_validation" else "8192"), f"-artifact_prefix={artifacts}/",
           "-print_final_stats=1", "-seed=1"]
    if (FUZZ / f"{target}.dict").exists():
        cmd.append(f"-dict={FUZZ / f'{target}.dict'}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 60,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{target}: fuzzer found a problem (input in {artifacts}):\n{out[-4000:]}"
    assert not any(artifacts.iterdir()), list(artifacts.iterdir())
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", out).group(1))
    assert runs >= 200, f"only {runs} executions: the harness is not really running\n{out[-2000:]}"
    assert int(re.search(r"INITED cov: (\d+)", out).group(1)) > 20, "no coverage feedback (instrumentation off?)"


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_and_past_findings_replay_cleanly(target):
    harness = _harness(target)
    files = sorted((FUZZ / "corpus" / target).iterdir())
    regressions = FUZZ / "regressions" / target
    if regressions.is_dir():
        files += sorted(regressions.iterdir())
    assert len(files) >= 4
    for path in files:
        harness.test_one_input(path.read_bytes())


@pytest.mark.parametrize("target,inputs", [("image_convert", 500), ("bundle_loader", 100), ("core_validation", 150)])
def test_memory_stays_flat_over_many_mutated_inputs(target, inputs):
    """After a warm-up (caches fill), mutated seed inputs leave no growing Python heap behind."""
    import gc
    import random
    import tracemalloc
    import warnings

    harness = _harness(target)
    seeds = [p.read_bytes() for p in sorted((FUZZ / "corpus" / target).iterdir())]
    rng = random.Random(5)

    def mutated():
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow warnings of huge 32FC1 values
        for _ in range(inputs // 2):
            harness.test_one_input(mutated())
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(inputs):
                harness.test_one_input(mutated())
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 256 << 10, f"{target}: {grown} bytes still allocated after {inputs} inputs"


# ----------------------------------------------------------------------------- what fuzzing found, pinned


def test_stop_conditions_of_any_type_are_rejected_with_settings_error():
    """Found by fuzzing: a str or None reached math.isfinite / comparisons and escaped as TypeError."""
    from spike_perception.core import SettingsError, StopConditions

    for kw, name in [(dict(min_confidence="0.5"), "min_confidence"), (dict(max_synaptic_events=None), "max_synaptic"),
                     (dict(budget=[1]), "budget"), (dict(max_synaptic_events=2.5), "max_synaptic"),
                     (dict(min_confidence=float("nan")), "min_confidence"), (dict(budget=-1e-9), "budget"),
                     (dict(max_synaptic_events=2**64 - 1), "max_synaptic")]:
        with pytest.raises(SettingsError, match=name):
            StopConditions(10, **kw)
    with pytest.raises(SettingsError, match="max_timesteps"):
        StopConditions(True)
    assert StopConditions(10, min_confidence=1, budget=0).min_confidence == 1  # ints are numbers


def test_oversized_image_header_is_refused_before_touching_the_data():
    """The size checks come before the data is read: a header claiming a huge image costs nothing."""
    from spike_perception.image_convert import MAX_PIXELS, ImageRejected, decode_image

    class Untouchable:
        def __buffer__(self, flags):
            raise AssertionError("data was read")

    for h, w in [(8193, 1), (1, 8193), (4097, 4097), (2**31 - 1, 2**31 - 1)]:
        assert h * w > MAX_PIXELS or max(h, w) > 8192
        with pytest.raises(ImageRejected) as info:
            decode_image(h, w, "rgba8", False, w * 4, Untouchable())
        assert info.value.reason == "size" and str(h) in str(info.value)
