"""Spike-based anytime perception (Dutson, Li, Gupta, WACV 2023).

Subpackages: ``model`` (the SNN bundle), ``sim`` (reference, streaming and batched simulators),
``metrics`` (Pareto latency/power), ``data``, and the offline toolkit stages.
"""

__version__ = "0.1.0"
