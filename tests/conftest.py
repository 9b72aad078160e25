"""Shared test set-up: quiet TensorFlow, a fixed ROS 2 domain on loopback for any test that needs it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "73")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


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
