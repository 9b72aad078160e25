"""Optional real-time scheduling of the node's threads (executor, DDS, the stream worker and the queries).

A robot runs perception beside other work; a SCHED_FIFO priority keeps a deadline query from waiting
behind a busy neighbour for a scheduler time slice, and a CPU set keeps it off a core another process
owns. Both are Linux per-thread settings applied by the thread itself (``pid 0`` = the calling
thread); where the process may not (no CAP_SYS_NICE, a container, another OS) :meth:`apply` returns
what failed and the thread runs as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .core import SettingsError

_ORIGINAL_CPUS = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


@dataclass(frozen=True)
class ThreadScheduling:
    priority: int = 0  # SCHED_FIFO priority 1-99; 0 = the normal scheduler
    cpus: frozenset = frozenset()  # empty = the CPUs the process started with

    @classmethod
    def parse(cls, priority, cpus: str) -> ThreadScheduling:
        """From the node's parameters ``realtime_priority`` (int) and ``cpu_affinity`` ('0,1'); SettingsError
        names a bad value."""
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 99:
            raise SettingsError(f"realtime_priority must be an integer in [0, 99], got {priority!r}")
        if not isinstance(cpus, str):
            raise SettingsError(f"cpu_affinity must be a string like '0,1', got {cpus!r}")
        try:
            ids = frozenset(int(c) for c in cpus.replace(" ", "").split(",") if c)
        except ValueError:
            raise SettingsError(f"cpu_affinity must list CPU numbers like '0,1', got {cpus!r}") from None
        if any(c < 0 for c in ids):
            raise SettingsError(f"cpu_affinity must list CPU numbers >= 0, got {cpus!r}")
        return cls(priority, ids)

    def apply(self, tid: int = 0) -> list[str]:
        """Apply to the calling thread (or the thread ``tid``); the problems (empty when all took effect or
        nothing was asked)."""
        problems = []
        if self.priority or hasattr(os, "SCHED_FIFO"):
            try:
                if self.priority:
                    os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(self.priority))
                elif os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except (OSError, AttributeError) as e:
                if self.priority:
                    problems.append(f"realtime_priority {self.priority} not applied ({e}); the thread keeps the "
                                    "normal scheduler (SCHED_FIFO needs CAP_SYS_NICE or an rtprio limit)")
        if self.cpus or _ORIGINAL_CPUS:
            try:
                os.sched_setaffinity(tid, self.cpus or _ORIGINAL_CPUS)
            except (OSError, AttributeError, ValueError) as e:
                if self.cpus:
                    problems.append(f"cpu_affinity {sorted(self.cpus)} not applied ({e}); the thread may run on "
                                    "any CPU")
        return problems

    def apply_to_process(self) -> list[str]:
        """Apply to every thread of the process (the executor's, DDS's receive and event threads, the workers):
        a request's way in and the answer's way out cross DDS and executor threads, not only the workers.
        Threads started later inherit the setting from the thread that starts them."""
        problems: set[str] = set()
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = [0]
        for tid in tids:
            try:
                problems.update(self.apply(tid))
            except ProcessLookupError:  # the thread ended meanwhile
                pass
        return sorted(problems)
