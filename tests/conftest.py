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
