"""``loadengine compare BASELINE CONTENDER``: metric by metric, with a notion of noise.

Each side is a results file or a folder of them (a suite's result folder). Files are
grouped by scenario (the file name without ``.json`` and a trailing ``-rN`` repetition
suffix); with repetitions a side's value is the median and its spread is max - min.

A metric regresses when it moves the wrong way past its tolerance (``--fail-on``) *and*,
when both sides have repetitions, by more than the larger of the two spreads: a change
inside the runs' own noise is reported but never fails. Pure, except ``load_side``.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# metric -> (better direction, how to read it from a results document)
HIGHER, LOWER = "higher", "lower"
METRICS: dict[str, str] = {
    "achieved_cps": HIGHER,
    "efficiency": HIGHER,
    "latency_p50": LOWER,
    "latency_p90": LOWER,
    "latency_p99": LOWER,
    "latency_max": LOWER,
    "error_count": LOWER,
    "engine_cpu_s_per_10k": LOWER,
}
DEFAULT_FAIL_ON = "achieved_cps<-5%,efficiency<-5%,latency_p99>+25%,engine_cpu_s_per_10k>+25%"
REPETITION = re.compile(r"-r\d+$")
RULE = re.compile(r"^\s*([a-z0-9_]+)\s*([<>])\s*([+-]?\d+(?:\.\d+)?)%\s*$")


class CompareError(ValueError):
    """Unusable input (one line, exit 2)."""


def metrics_of(doc: dict[str, Any]) -> dict[str, float | None]:
    s = doc["summary"]
    lat = s.get("latency_ms") or {}
    return {
        "achieved_cps": s.get("achieved_cps"),
        "efficiency": s.get("efficiency"),
        "latency_p50": lat.get("p50"),
        "latency_p90": lat.get("p90"),
        "latency_p99": lat.get("p99"),
        "latency_max": lat.get("max"),
        "error_count": s.get("error_count"),
        "engine_cpu_s_per_10k": engine_cpu_s_per_10k(doc),
    }


def engine_cpu_s_per_10k(doc: dict[str, Any]) -> float | None:
    """Engine (coordinator + shards) CPU-seconds per 10K committed changes."""
    samples = doc.get("resources") or []
    changes = doc["summary"].get("changes") or 0
    if len(samples) < 2 or not changes:
        return None
    cpu_s, prev_t = 0.0, 0.0
    for r in samples:
        cpu_s += (r["coordinator_cpu_pct"] + r["shards_cpu_pct"]) / 100 * (r["t_s"] - prev_t)
        prev_t = r["t_s"]
    return round(cpu_s / changes * 10_000, 4)


def parse_rules(text: str) -> dict[str, float]:
    """``'achieved_cps<-5%,latency_p99>+20%'`` -> {metric: signed % limit}."""
    rules: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        m = RULE.match(part)
        if not m:
            raise CompareError(
                f"--fail-on {part.strip()!r}: expected METRIC<-N% or METRIC>+N% "
                f"(metrics: {', '.join(METRICS)})"
            )
        name, op, pct = m.group(1), m.group(2), float(m.group(3))
        if name not in METRICS:
            raise CompareError(f"--fail-on {name!r}: unknown metric; known: {', '.join(METRICS)}")
        if (op == "<") != (METRICS[name] == HIGHER):
            raise CompareError(
                f"--fail-on {part.strip()!r}: {name} is better when {METRICS[name]}; "
                f"use {'<' if METRICS[name] == HIGHER else '>'}"
            )
        rules[name] = pct
    return rules


@dataclass(frozen=True, slots=True)
class Side:
    """One scenario on one side: median of its runs, and their spread."""

    values: dict[str, float | None]
    spread: dict[str, float | None]
    runs: int


def summarise(docs: list[dict[str, Any]]) -> Side:
    per = [metrics_of(d) for d in docs]
    values: dict[str, float | None] = {}
    spread: dict[str, float | None] = {}
    for name in METRICS:
        xs = [x for m in per if (x := m[name]) is not None]
        values[name] = statistics.median(xs) if xs else None
        spread[name] = (max(xs) - min(xs)) if len(xs) > 1 else None
    return Side(values, spread, len(docs))


def load_side(path: str) -> dict[str, list[dict[str, Any]]]:
    """Scenario name -> results documents, from a file or a folder."""
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f
            for f in p.glob("*.json")
            if not f.name.endswith(".ledger.json") and f.name != "summary.json"
        )
    elif p.is_file():
        files = [p]
    else:
        raise CompareError(f"{path!r}: no such results file or folder")
    out: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        try:
            doc = orjson.loads(f.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CompareError(f"{str(f)!r}: not a readable results file ({exc})") from None
        if not isinstance(doc, dict) or "summary" not in doc:
            raise CompareError(f"{str(f)!r}: not a loadengine results file")
        out.setdefault(REPETITION.sub("", f.stem), []).append(doc)
    if not out:
        raise CompareError(f"{path!r}: holds no results files")
    return out


def compare_sides(base: Side, cont: Side, rules: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for name, better in METRICS.items():
        b, c = base.values[name], cont.values[name]
        diff = None if b is None or c is None else c - b
        pct = None if diff is None or not b else 100.0 * diff / abs(b)
        noise = max(
            (x for x in (base.spread[name], cont.spread[name]) if x is not None), default=None
        )
        within_noise = noise is not None and diff is not None and abs(diff) <= noise
        worse = diff is not None and ((diff < 0) if better == HIGHER else (diff > 0))
        limit = rules.get(name)
        beyond = (limit is not None and pct is not None and worse and abs(pct) > abs(limit)) or (
            limit is not None and pct is None and worse and b == 0
        )
        rows.append(
            {
                "metric": name,
                "better": better,
                "baseline": b,
                "contender": c,
                "difference": diff,
                "difference_pct": None if pct is None else round(pct, 2),
                "noise": noise,
                "within_noise": within_noise,
                "regression": bool(beyond and not within_noise),
            }
        )
    return rows


def workloads_of(docs: list[dict[str, Any]]) -> list[str]:
    """The workloads the runs wrote (files from before workloads existed: ``inventory``)."""
    names = {str(((d.get("plan") or {}).get("workload") or {}).get("value", "inventory"))
             for d in docs}  # fmt: skip
    return sorted(names)


def compare_paths(baseline: str, contender: str, rules: dict[str, float]) -> dict[str, Any]:
    left, right = load_side(baseline), load_side(contender)
    if len(left) == 1 and len(right) == 1:  # two single scenarios: compare them whatever named
        pairs = [(next(iter(left)), next(iter(left.values())), next(iter(right.values())))]
    else:
        common = sorted(set(left) & set(right))
        if not common:
            raise CompareError("baseline and contender share no scenario name")
        pairs = [(n, left[n], right[n]) for n in common]
    scenarios = []
    for name, bdocs, cdocs in pairs:
        b, c = summarise(bdocs), summarise(cdocs)
        rows = compare_sides(b, c, rules)
        scenarios.append(
            {
                "scenario": name,
                "baseline_runs": b.runs,
                "contender_runs": c.runs,
                "workloads": {"baseline": workloads_of(bdocs), "contender": workloads_of(cdocs)},
                "metrics": rows,
                "regression": any(r["regression"] for r in rows),
            }
        )
    return {
        "rules": rules,
        "scenarios": scenarios,
        "regression": any(s["regression"] for s in scenarios),
    }


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.3f}" if abs(x) < 100 else f"{x:,.1f}"


def render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    head = ["metric", "better", "baseline", "contender", "diff", "diff %", "noise", "verdict"]
    lines: list[str] = []
    for sc in result["scenarios"]:
        rows = [
            [
                r["metric"],
                r["better"],
                _fmt(r["baseline"]),
                _fmt(r["contender"]),
                _fmt(r["difference"]),
                "-" if r["difference_pct"] is None else f"{r['difference_pct']:+.2f}%",
                _fmt(r["noise"]),
                "REGRESSION" if r["regression"] else ("noise" if r["within_noise"] else "ok"),
            ]
            for r in sc["metrics"]
        ]
        title = (
            f"{sc['scenario']} (baseline {sc['baseline_runs']} run(s), contender "
            f"{sc['contender_runs']} run(s))"
        )
        w = sc.get("workloads") or {}
        if w and w["baseline"] != w["contender"]:  # not like for like: said on the title
            title += (
                f" WARNING: different workloads: {', '.join(w['baseline'])} vs "
                f"{', '.join(w['contender'])}"
            )
        if fmt == "markdown":
            lines += [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=False)]
            lines.append(title)
            for r in (head, *rows):
                lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)))
        lines.append("")
    lines.append("REGRESSION" if result["regression"] else "no regression")
    return "\n".join(lines)
