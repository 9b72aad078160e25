"""Deterministic train/validation splits."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def validation_split(n: int, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of a seeded random split of ``range(n)``; both sorted.

    The same ``n``, ``fraction`` and ``seed`` always give the same split, on every platform
    (NumPy's PCG64 generator is stable across versions).
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction}")
    if n < 0:
        raise ConfigError(f"n must be non-negative, got {n}")
    n_val = int(round(n * fraction))
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def stratified_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of up to ``per_class`` examples of each class, chosen with a seeded generator."""
    rng = np.random.Generator(np.random.PCG64(seed))
    picks = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        picks.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
