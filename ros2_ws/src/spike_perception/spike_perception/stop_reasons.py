"""Stop reasons: the core's names and the AnytimeClassification.STOP_* codes the messages carry."""

from __future__ import annotations

from spike_perception_interfaces.msg import AnytimeClassification as _M

from .core import BUDGET, CANCELED, CONFIDENCE, EVENTS, INFEASIBLE, PREEMPTED, TIMESTEPS

SHUTDOWN = "shutdown"  # queries interrupted by the node's shutdown
BUSY = "busy"  # every query engine was in use and the query had no deadline to wait for
ERROR = "error"  # the request was invalid

CODES = {TIMESTEPS: _M.STOP_TIMESTEPS, CONFIDENCE: _M.STOP_CONFIDENCE, EVENTS: _M.STOP_EVENTS,
         BUDGET: _M.STOP_BUDGET, INFEASIBLE: _M.STOP_INFEASIBLE, CANCELED: _M.STOP_CANCELED,
         PREEMPTED: _M.STOP_PREEMPTED, BUSY: _M.STOP_BUSY, SHUTDOWN: _M.STOP_SHUTDOWN, ERROR: _M.STOP_ERROR}
NAMES = {code: name for name, code in CODES.items()}


def code(name: str) -> int:
    """The message code of a core stop reason ('' = STOP_NONE: the estimate is not final)."""
    return CODES.get(name, _M.STOP_NONE)


def describe(estimate: _M, error: str = "") -> str:
    """A readable stop reason of an answer: the error text if there is one, else the reason's name."""
    return error or NAMES.get(estimate.stop_reason, "none")
