"""The max-rate search: the highest target CPS that still passes its thresholds.

Step up geometrically from ``start_cps`` until a trial fails (or ``max_cps``), then bisect
between the last pass and the first failure until they are within ``resolution`` of each
other or the trial budget is spent. A trial is one ``loadengine run`` with thresholds;
it passes when it completes and every threshold holds. Pure: trials come from a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Trial = Callable[[int], dict[str, Any]]  # target CPS -> {"passed": bool, ...evidence}


@dataclass(frozen=True, slots=True)
class SearchPlan:
    start_cps: int = 1000
    max_cps: int = 200_000
    factor: float = 2.0
    resolution: float = 0.05  # stop when (fail - pass) / pass <= this
    max_trials: int = 12


@dataclass(slots=True)
class SearchResult:
    max_sustainable_cps: int | None = None
    first_failing_cps: int | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "max_sustainable_cps": self.max_sustainable_cps,
            "first_failing_cps": self.first_failing_cps,
            "trials": self.trials,
        }


def search(plan: SearchPlan, trial: Trial) -> SearchResult:
    out = SearchResult()

    def run(cps: int) -> bool:
        evidence = trial(cps)
        out.trials.append({"target_cps": cps, **evidence})
        return bool(evidence["passed"])

    cps = plan.start_cps
    while len(out.trials) < plan.max_trials:
        if not run(cps):
            out.first_failing_cps = cps
            break
        out.max_sustainable_cps = cps
        if cps >= plan.max_cps:
            return out
        cps = min(plan.max_cps, max(cps + 1, int(cps * plan.factor)))
    lo, hi = out.max_sustainable_cps, out.first_failing_cps
    while lo is not None and hi is not None and len(out.trials) < plan.max_trials:
        if (hi - lo) / lo <= plan.resolution or hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if run(mid):
            lo = out.max_sustainable_cps = mid
        else:
            hi = out.first_failing_cps = mid
    return out
