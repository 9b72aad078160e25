"""Shared test set-up: quiet TensorFlow, a fixed ROS 2 domain on loopback for any test that needs it, and in CI
(the ``CI`` environment variable set, as .ci/run does) every skip turned into a failure.

Tests skip when a back end, data set or the built ROS workspace is missing, so that a user's partial install still
runs the rest. CI installs all of them (scripts/bootstrap.sh) and checks them first (scripts/check_backends.sh),
so a skip there means a test silently did not run: it fails, with the skip's reason. No skip is allowed in CI.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "73")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")

SKIPPED_IN_CI = "skipped in CI"  # .ci/run counts the failures whose text contains this


def in_ci() -> bool:
    """True where the CI environment variable is set to anything but empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _as_failure(report) -> None:
    """Turn a skipped test or collector report into a failed one that still says why it skipped."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{SKIPPED_IN_CI}: {reason.removeprefix('Skipped: ')} (scripts/check_backends.sh lists what is missing)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        _as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and in_ci():  # pytest.importorskip at module level
        _as_failure(report)
    return report


@pytest.fixture(autouse=True, scope="session")
def _quiet_tensorflow_retracing():
    """Each test builds fresh engines; TensorFlow warns about retracing, which is expected here."""
    try:
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    except Exception:  # pragma: no cover
        pass
    yield


@pytest.fixture(scope="module")
def default_mnist():
    """The bundled default model and a loader of its network inputs for the first N MNIST test digits."""
    from pathlib import Path

    from anytime_snn.convert.convert import network_input
    from anytime_snn.data import load_dataset
    from anytime_snn.model import load_bundle

    bundle = load_bundle(Path(__file__).resolve().parents[1] / "models" / "default")

    def digits(limit: int):
        test = load_dataset("mnist", "test", limit=limit)
        return bundle, network_input(bundle, test.images), test.labels

    return digits
