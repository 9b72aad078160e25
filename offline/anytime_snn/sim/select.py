"""Which batched engine simulates a bundle offline: the event-driven CPU engine where it applies, else TF/XLA."""

from __future__ import annotations

from ..model.bundle import Bundle

ENGINES = ("auto", "numba", "tf")


def resolve(bundle: Bundle, engine: str = "auto") -> str:
    """'numba' or 'tf'. ``auto`` picks the event-driven numba engine for every bundle it simulates
    (on a CPU it beats the TF engine's dense per-step products because spikes are sparse) and the TF
    engine otherwise; choose ``tf`` explicitly to run on a GPU."""
    from .batch_engine import supports

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "numba" if supports(bundle) else "tf"
    if engine == "numba" and not supports(bundle):
        kinds = sorted({layer.kind for layer in bundle.layers})
        raise ValueError(f"the numba engine does not simulate this bundle (layer kinds {kinds}); use --engine tf")
    return engine


def batched_engine(bundle: Bundle, engine: str = "auto", *, batch_size: int | None = None, threads: int | None = None):
    """An engine with ``run(x, T, record_v_out)`` and ``set_parameters(bundle)`` (TensorFlow only if needed)."""
    if resolve(bundle, engine) == "numba":
        from .batch_engine import BatchEngine

        return BatchEngine(bundle, threads=threads)
    from .tf_engine import TFEngine

    return TFEngine(bundle, batch_size=batch_size)
