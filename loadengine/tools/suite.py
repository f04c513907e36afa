"""Performance suites: scenarios from ``loadengine/data/suites/NAME.toml`` run unattended into one
dated, self-describing folder, with a verdict per scenario.

Each scenario becomes a profile file (the suite's ``[defaults]`` plus the scenario's own
keys; ``--quick`` swaps in ``quick_duration`` / ``quick_steps``) and one ``loadengine
run`` child per repetition, so every results file is an ordinary one. ``kind = "search"``
runs the max-rate search instead. Without a DSN the suite starts one embedded server for
all its scenarios. ``summary.json`` and ``summary.md`` go next to the results.

Exit: 0 every scenario passed; 5 a scenario failed its thresholds (or was aborted by
overload); 1 a run crashed or could not start.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from loadengine.core.dsn import DEFAULT_AMQP_URL
from loadengine.core.status import JUDGED, Exit
from loadengine.settings import PROFILE_EXTRA_KEYS, PROFILE_KEYS, SettingsError, load_toml
from loadengine.tools import compare
from loadengine.tools.search import SearchPlan, search

SCENARIO_KEYS = {
    "name",
    "title",
    "kind",
    "profile",
    "quick_duration",
    "quick_steps",
    "pipeline",
}

SEARCH_KEYS = {"start_cps", "max_cps", "factor", "resolution", "max_trials", "quick_max_trials"}


def load_suite(name_or_path: str) -> dict[str, Any]:
    stem, data = load_toml("suite", name_or_path, "suites")
    scenarios = data.get("scenario")
    if not isinstance(scenarios, list) or not scenarios:
        raise SettingsError(f"suite {name_or_path!r}: needs at least one [[scenario]]")
    allowed = set(PROFILE_KEYS) | PROFILE_EXTRA_KEYS
    for i, sc in enumerate(scenarios):
        unknown = sorted(set(sc) - allowed - SCENARIO_KEYS - SEARCH_KEYS)
        if unknown or "name" not in sc:
            what = f"unknown key {unknown[0]!r}" if unknown else "missing 'name'"
            raise SettingsError(f"suite {name_or_path!r} scenario[{i}]: {what}")
    bad = sorted(set(data.get("defaults", {})) - allowed)
    if bad:
        raise SettingsError(f"suite {name_or_path!r} [defaults]: unknown key {bad[0]!r}")
    data["_name"] = stem
    return data


def _steps_profile(steps: list[dict[str, int]] | None) -> str:
    """A profile holding only a ramp's steps (every other value travels as a flag)."""
    if not steps:
        return ""
    items = ", ".join(
        f"{{ target_cps = {st['target_cps']}, duration = {st['duration']} }}" for st in steps
    )
    return f"steps = [{items}]\n"


def _flags(values: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, v in values.items():
        if key == "steps":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(v, bool):
            out += [flag] if v else []
        else:
            out += [flag, str(v)]
    return out


def scenario_profile(suite: dict[str, Any], sc: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The profile a scenario runs with (pure)."""
    values: dict[str, Any] = dict(suite.get("defaults", {}))
    values.update({k: v for k, v in sc.items() if k in PROFILE_KEYS or k == "steps"})
    if quick and "quick_steps" in sc:
        values["steps"] = sc["quick_steps"]
        values.pop("duration", None)
    elif quick and "quick_duration" in sc:
        values["duration"] = sc["quick_duration"]
        values.pop("steps", None)
    if quick:
        values["warmup"] = 0
    return values


class SuiteRunner:
    def __init__(
        self,
        suite: dict[str, Any],
        out_dir: Path,
        quick: bool,
        repeat: int,
        env: dict[str, str],
        say: Callable[[str], None],
    ) -> None:
        self.suite, self.out_dir, self.quick, self.repeat = suite, out_dir, quick, repeat
        self.env, self.say = env, say

    def run_once(self, name: str, profile: dict[str, Any], extra: list[str]) -> dict[str, Any]:
        """One ``loadengine run``: scenario values as flags (they beat the environment),
        ramp steps through a profile file."""
        prof = self.out_dir / f".{name}.profile.toml"
        prof.write_text(_steps_profile(profile.get("steps")))
        out = self.out_dir / f"{name}.json"
        cmd = [
            sys.executable,
            "-m",
            "loadengine",
            "run",
            "--profile",
            str(prof),
            *_flags(profile),
            "--output",
            str(out),
            *extra,
        ]
        workload = profile.get("workload")
        if workload:  # its tables, where missing (CREATE TABLE IF NOT EXISTS; rows kept)
            init = [
                sys.executable,
                "-m",
                "loadengine",
                "schema",
                "init",
                "--workload",
                str(workload),
            ]
            self.say(f"== {name}: loadengine schema init --workload {workload}")
            subprocess.run(init, env=self.env, check=False)
        self.say(f"== {name}: loadengine run {' '.join(cmd[5:])}")
        code = subprocess.run(cmd, env=self.env, check=False).returncode
        prof.unlink(missing_ok=True)
        doc = orjson.loads(out.read_bytes()) if out.is_file() else None
        return {"file": out.name, "exit_code": code, "doc": doc}

    def scenario(self, sc: dict[str, Any]) -> dict[str, Any]:
        if sc.get("pipeline"):
            return self.pipeline_scenario(sc)
        if sc.get("kind") == "search":
            return self.search_scenario(sc)
        profile = scenario_profile(self.suite, sc, self.quick)
        runs = []
        for r in range(self.repeat):
            name = sc["name"] if self.repeat == 1 else f"{sc['name']}-r{r + 1}"
            runs.append(self.run_once(name, profile, []))
        return summarise_runs(sc, runs)

    def pipeline_scenario(self, sc: dict[str, Any]) -> dict[str, Any]:
        """``pipeline = true``: the scenario runs against the reference pipeline (a private
        server, a real Debezium, RabbitMQ), followed at the sink."""
        from loadengine.pipeline.local import ReferencePipeline

        sink = str(scenario_profile(self.suite, sc, self.quick).get("sink") or DEFAULT_AMQP_URL)
        saved = self.env
        with ReferencePipeline(sink) as pipe:
            self.say(f"== {sc['name']}: reference pipeline on {pipe.dsn.redacted()}")
            self.env = {**saved, "LOADENGINE_DSN": pipe.dsn.to_url(), "LOADENGINE_SINK": sink}
            try:
                return self.scenario({k: v for k, v in sc.items() if k != "pipeline"})
            finally:
                self.env = saved

    def search_scenario(self, sc: dict[str, Any]) -> dict[str, Any]:
        profile = scenario_profile(self.suite, sc, self.quick)
        trials_max = sc.get("quick_max_trials", 4) if self.quick else sc.get("max_trials", 12)
        plan = SearchPlan(
            start_cps=int(sc.get("start_cps", 1000)),
            max_cps=int(sc.get("max_cps", 200_000)),
            factor=float(sc.get("factor", 2.0)),
            resolution=float(sc.get("resolution", 0.05)),
            max_trials=int(trials_max),
        )

        def trial(cps: int) -> dict[str, Any]:
            res = self.run_once(f"{sc['name']}-{cps}", {**profile, "target_cps": cps}, [])
            return {**_evidence(res), "passed": res["exit_code"] == 0}

        result = search(plan, trial).document()
        (self.out_dir / f"{sc['name']}.search.json").write_bytes(
            orjson.dumps(result, option=orjson.OPT_INDENT_2)
        )
        best = result["max_sustainable_cps"]
        crashed = any(t["exit_code"] not in JUDGED for t in result["trials"])
        return {
            "name": sc["name"],
            "title": sc.get("title", sc["name"]),
            "kind": "search",
            "target_cps": best,
            "verdict": "crash" if crashed else ("pass" if best is not None else "fail"),
            "search": result,
            **_best_row(result),
        }


def _evidence(res: dict[str, Any]) -> dict[str, Any]:
    doc = res["doc"]
    if doc is None:
        return {"file": res["file"], "exit_code": res["exit_code"]}
    s = doc["summary"]
    return {
        "file": res["file"],
        "exit_code": res["exit_code"],
        "achieved_cps": s["achieved_cps"],
        "efficiency": s["efficiency"],
        "latency_p99_ms": s["latency_ms"].get("p99"),
        "errors": s["error_count"],
        "thresholds": doc.get("thresholds"),
    }


def _best_row(result: dict[str, Any]) -> dict[str, Any]:
    best = [
        t
        for t in result["trials"]
        if t["passed"] and t["target_cps"] == result["max_sustainable_cps"]
    ]
    if not best:
        return {}
    t = best[-1]
    return {
        "achieved_cps": t.get("achieved_cps"),
        "efficiency": t.get("efficiency"),
        "latency_p99_ms": t.get("latency_p99_ms"),
        "errors": t.get("errors"),
        "files": [t["file"]],
    }


def _cpu(doc: dict[str, Any]) -> tuple[float | None, float | None]:
    samples = doc.get("resources") or []
    if not samples:
        return None, None
    eng = statistics.fmean(r["coordinator_cpu_pct"] + r["shards_cpu_pct"] for r in samples)
    db = [r["db_cpu_pct"] for r in samples if r["db_cpu_pct"] is not None]
    return round(eng, 1), (round(statistics.fmean(db), 1) if db else None)


def _stat(values: list[float | None]) -> dict[str, float] | None:
    xs = [x for x in values if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def summarise_runs(sc: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    docs = [r["doc"] for r in runs if r["doc"] is not None]
    codes = [r["exit_code"] for r in runs]
    verdict = (
        "crash"
        if any(c not in JUDGED for c in codes) or not docs
        else ("pass" if all(c == 0 for c in codes) else "fail")
    )
    row: dict[str, Any] = {
        "name": sc["name"],
        "title": sc.get("title", sc["name"]),
        "kind": "run",
        "verdict": verdict,
        "exit_codes": codes,
        "files": [r["file"] for r in runs],
    }
    if not docs:
        return row
    s = [d["summary"] for d in docs]
    cpu = [_cpu(d) for d in docs]
    row.update(
        {
            "target_cps": s[0]["target_cps"],
            "achieved_cps": statistics.median(x["achieved_cps"] for x in s),
            "efficiency": statistics.median(x["efficiency"] or 0 for x in s),
            "latency_p50_ms": statistics.median(x["latency_ms"]["p50"] or 0 for x in s),
            "latency_p99_ms": statistics.median(x["latency_ms"]["p99"] or 0 for x in s),
            "errors": sum(x["error_count"] for x in s),
            "engine_cpu_pct": _stat([c[0] for c in cpu if c[0] is not None]),
            "db_cpu_pct": _stat([c[1] for c in cpu if c[1] is not None]),
            "engine_cpu_s_per_10k": _stat([compare.engine_cpu_s_per_10k(d) for d in docs]),
            "repeats": {
                "achieved_cps": _stat([x["achieved_cps"] for x in s]),
                "latency_p99_ms": _stat([x["latency_ms"]["p99"] for x in s]),
            },
            "steps": s[0].get("steps") if len(s[0].get("steps") or []) > 1 else None,
            "thresholds": docs[-1].get("thresholds"),
        }
    )
    return row


def markdown(summary: dict[str, Any]) -> str:
    cols = (
        "scenario",
        "target",
        "achieved",
        "efficiency",
        "p50 / p99 ms",
        "errors",
        "engine CPU %",
        "DB CPU %",
        "result",
    )
    head = "| " + " | ".join(cols) + " |"
    lines = [
        f"# Suite `{summary['suite']}`{' (quick)' if summary['quick'] else ''}",
        "",
        f"Started {summary['started_at']}, {summary['repeat']} run(s) per scenario, "
        f"server {summary['server']}.",
        "",
        head,
        "|" + "---|" * 9,
    ]

    def f(x: Any, spec: str = ",.1f") -> str:
        return "-" if x is None else format(x, spec)

    for r in summary["scenarios"]:
        eng = r.get("engine_cpu_pct") or {}
        db = r.get("db_cpu_pct") or {}
        target = r.get("target_cps")
        tgt = ("max " + f(target, ",")) if r["kind"] == "search" else f(target, ",.0f")
        eff = r.get("efficiency")
        lines.append(
            f"| {r['title']} | {tgt} | {f(r.get('achieved_cps'))} | "
            f"{'-' if eff is None else f'{100 * eff:.2f}%'} | "
            f"{f(r.get('latency_p50_ms'), '.1f')} / {f(r.get('latency_p99_ms'), '.1f')} | "
            f"{f(r.get('errors'), ',')} | {f(eng.get('median'))} | {f(db.get('median'))} | "
            f"{r['verdict'].upper()} |"
        )
        for st in r.get("steps") or []:
            lines.append(
                f"| ↳ step {st['target_cps']:,} | {st['target_cps']:,} | "
                f"{st['achieved_cps']:,.1f} | {100 * (st['efficiency'] or 0):.2f}% | "
                f"- / {f(st['latency_ms'].get('p99'), '.1f')} | | | | |"
            )
    for r in summary["scenarios"]:
        if r["kind"] == "search":
            lines += [
                "",
                f"Max-rate search `{r['name']}`: highest sustainable target "
                f"{f(r['search']['max_sustainable_cps'], ',')} CPS; first failing "
                f"{f(r['search']['first_failing_cps'], ',')} CPS. Trials:",
            ]
            for t in r["search"]["trials"]:
                lines.append(
                    f"- {t['target_cps']:,} CPS: {'pass' if t['passed'] else 'FAIL'}"
                    f" (achieved {f(t.get('achieved_cps'))}, p99 "
                    f"{f(t.get('latency_p99_ms'))} ms, exit {t['exit_code']})"
                )
    return "\n".join(lines) + "\n"


def run_suite(
    name: str,
    quick: bool,
    results_dir: str | None,
    repeat: int,
    dsn: str | None,
    say: Callable[[str], None],
) -> int:
    return run_loaded(load_suite(name), quick, results_dir, repeat, dsn, say)


def search_suite(
    values: dict[str, Any], search_keys: dict[str, Any], pipeline: bool = False
) -> dict[str, Any]:
    """A one-scenario suite for ``loadengine search`` (flags become its defaults)."""
    sc = {"name": "max-rate", "title": "Max-rate search", "kind": "search", **search_keys}
    if pipeline:
        sc |= {"name": "pipeline-capacity", "title": "Pipeline capacity", "pipeline": True}
    return {"_name": "search", "defaults": values, "scenario": [sc]}


def run_loaded(
    suite: dict[str, Any],
    quick: bool,
    results_dir: str | None,
    repeat: int,
    dsn: str | None,
    say: Callable[[str], None],
) -> int:
    if repeat < 1:
        raise SettingsError(f"--repeat {repeat}: must be >= 1")
    now = dt.datetime.now(dt.UTC)
    out = Path(results_dir or f"results/{now.strftime('%Y%m%dT%H%M%SZ')}-{suite['_name']}")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    server = None
    if dsn:
        env["LOADENGINE_DSN"] = dsn
    elif not env.get("LOADENGINE_DSN"):
        from loadengine.server import embedded, schema_admin

        server = embedded.start()
        schema_admin.init(server.dsn())
        env["LOADENGINE_DSN"] = server.dsn().to_url()
        say(f"embedded server for the suite on 127.0.0.1:{server.port}")
    try:
        runner = SuiteRunner(suite, out, quick, repeat, env, say)
        rows = [runner.scenario(sc) for sc in suite["scenario"]]
    finally:
        if server is not None:
            server.stop()
            server.remove()
    summary = {
        "suite": suite["_name"],
        "quick": quick,
        "repeat": repeat,
        "started_at": now.isoformat(timespec="seconds"),
        "server": "embedded" if server is not None else "from DSN",
        "scenarios": rows,
    }
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    md = markdown(summary)
    (out / "summary.md").write_text(md)
    say(md)
    say(f"results in {out}")
    verdicts = {r["verdict"] for r in rows}
    if "crash" in verdicts:
        return Exit.FAILED
    return Exit.THRESHOLD if "fail" in verdicts else Exit.OK
