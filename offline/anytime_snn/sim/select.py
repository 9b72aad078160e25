"""Which batched engine simulates a bundle offline: the event-driven CPU engine (every layer kind), TF/XLA for GPUs."""

from __future__ import annotations

from ..model.bundle import Bundle

ENGINES = ("auto", "numba", "tf")


def resolve(bundle: Bundle, engine: str = "auto") -> str:
    """'numba' or 'tf'. ``auto`` picks the event-driven numba engine, which simulates every layer kind
    (on a CPU it beats the TF engine's dense per-step products because spikes are sparse); the TF
    engine only where numba is missing. Choose ``tf`` explicitly to run on a GPU."""
    from .batch_engine import supports

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "numba" if supports(bundle) else "tf"
    if engine == "numba" and not supports(bundle):
        raise ValueError("the numba engine is not available here (numba missing or disabled); use --engine tf")
    return engine


def batched_engine(bundle: Bundle, engine: str = "auto", *, batch_size: int | None = None, threads: int | None = None):
    """An engine with ``run(x, T, record_v_out)`` and ``set_parameters(bundle)`` (TensorFlow only if needed)."""
    if resolve(bundle, engine) == "numba":
        from .batch_engine import BatchEngine

        return BatchEngine(bundle, threads=threads)
    from .tf_engine import TFEngine

    return TFEngine(bundle, batch_size=batch_size)
