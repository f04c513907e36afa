"""Pass/fail limits on a run, k6-style: declared in profiles, suites or flags, checked
against the results summary. Pure.

- ``min_efficiency``: measured changes / planned changes, a fraction (0.99 = 99 %);
- ``max_p99_ms``: latency p99 from the intended time, over the measured window;
- ``max_error_rate``: errors per committed-or-attempted transaction;
- ``max_capture_lag_ms``: capture-lag p99 (needs ``--follow-binlog``);
- ``max_e2e_lag_ms``: end-to-end lag p99, database to sink (needs ``--sink``);
- ``max_sink_loss``: changes the sink lost (load and setup; needs ``--sink``).
"""

from __future__ import annotations

from typing import Any

NAMES = (
    "min_efficiency",
    "max_p99_ms",
    "max_error_rate",
    "max_capture_lag_ms",
    "max_e2e_lag_ms",
    "max_sink_loss",
)


def _value(name: str, summary: dict[str, Any]) -> float | None:
    if name == "min_efficiency":
        return summary.get("efficiency")
    if name == "max_p99_ms":
        return (summary.get("latency_ms") or {}).get("p99")
    if name == "max_error_rate":
        attempts = summary.get("transactions", 0) + summary.get("error_count", 0)
        return summary.get("error_count", 0) / attempts if attempts else 0.0
    if name == "max_capture_lag_ms":
        return (summary.get("capture_lag_ms") or {}).get("p99")
    sink = summary.get("sink") or {}
    if name == "max_e2e_lag_ms":
        return (sink.get("e2e_lag_ms") or {}).get("p99")
    return sink.get("lost")


def evaluate(limits: dict[str, float], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per declared limit: ``{name, limit, value, pass}``. A value that could
    not be measured (e.g. lag without ``--follow-binlog``) fails: never pass blind."""
    out = []
    for name in NAMES:
        if name not in limits:
            continue
        limit, value = limits[name], _value(name, summary)
        if value is None:
            ok = False
        elif name.startswith("min_"):
            ok = value >= limit
        else:
            ok = value <= limit
        out.append({"name": name, "limit": limit, "value": value, "pass": ok})
    return out


def one_line(checks: list[dict[str, Any]]) -> str:
    failed = [c for c in checks if not c["pass"]]
    if not failed:
        return f"thresholds: all {len(checks)} passed"
    return "THRESHOLDS FAILED: " + "; ".join(
        f"{c['name']} {c['limit']} (measured {c['value']})" for c in failed
    )
