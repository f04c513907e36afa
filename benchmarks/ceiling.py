"""The engine against the database's ceiling, in one run, on one fresh private server.

Pairs, each run ``--repeat`` times, interleaved with the order alternated (reference then
engine, engine then reference, ...) so drift hits both sides alike, every run on freshly
created inventory tables (``schema_admin.reset``); binary log ROW on, ``sync_binlog=1``
(loadengine/data/mysql/cdc.cnf):

- ``insert100``: ``loadengine run --target-cps max --workers 2 --batch-size 100
  --mix insert_customer=1`` against the raw 2-process, 100-row multi-row INSERT loop;
- ``update100``: the same with ``--mix update_customer=1`` against the raw 2-process,
  100-row multi-row UPDATE loop (random distinct existing rows, the engine's shape);
- ``single16``: ``--workers 16 --batch-size 1 --mix insert_customer=1`` against sysbench
  ``oltp_insert --threads=16`` (single-row autocommit INSERTs). With more shards than
  CPUs the engine multiplexes them by default (half the CPUs' worth of processes, each
  shard on a greenlet of one ``epoll`` hub, round trips through ``loadengine.wire``); the
  layout that ran is taken from the results file and shown;
- ``single16procs``: the same with ``--no-multiplex``: one OS process per shard;
- ``bulk1000``: ``--workers 2 --batch-size 1000 --mix insert_customer=1`` against sysbench
  ``bulk_insert --threads=2`` (multi-row INSERTs of ~512 KiB per statement). Not the same
  row: sysbench's rows are two integers, the engine's are inventory customers (id, two
  names, an email), so its ratio is a reading, not a bar; the raw loop is the like-for-like
  reference;
- ``default100``: the default mix at batch 100, 2 workers (no reference: its rate).

With ``--baseline REV`` every pair becomes a triple: the same case is also run by the
engine as it was at git revision ``REV`` (checked out in a worktree and run from there
with the same interpreter and packages), in the middle of the triple, and the section
"A/B" reports current / baseline (ratio of medians and within each triple)
beside each side's ratio to the reference. That is how a change shows it did not slow
the default workload down.

Rates are the rows committed per second of the timed window, as each client counts them
(the engine's counts are the ones its audit proves). Output: JSON with every run, and
per case the median and spread (min-max) of each side, the ratio of medians, and the
engine / reference ratio within each pair (its median and spread: robust to the machine
drifting during the benchmark). Installs sysbench if it
is missing. Run it with nothing else on the machine.

    .venv/bin/python benchmarks/ceiling.py [--repeat 3] [--seconds 8] [--out FILE]
        [--baseline REV --cases insert100,update100,single16]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import raw_loop
from results_md import RESULTS_MD, spread, write_section

from loadengine.core.dsn import Dsn
from loadengine.server import database, embedded, queries, schema_admin

ENGINE_CASES = {
    "insert100": ["--workers", "2", "--batch-size", "100", "--mix", "insert_customer=1"],
    "update100": ["--workers", "2", "--batch-size", "100", "--mix", "update_customer=1"],
    "single16": ["--workers", "16", "--batch-size", "1", "--mix", "insert_customer=1"],
    "single16procs": [
        "--workers",
        "16",
        "--no-multiplex",
        "--batch-size",
        "1",
        "--mix",
        "insert_customer=1",
    ],
    "bulk1000": ["--workers", "2", "--batch-size", "1000", "--mix", "insert_customer=1"],
    "default100": ["--workers", "2", "--batch-size", "100"],
}


def engine_run(
    d: Dsn, case: str, seconds: float, tmp: Path, i: int, code_dir: Path | None = None
) -> dict:
    """One engine run; ``code_dir``: the engine's code from that checkout (the baseline)."""
    out = tmp / f"{case}-{i}{'-baseline' if code_dir else ''}.json"
    cmd = [sys.executable, "-m", "loadengine", "run", "--dsn", d.to_url(), "--target-cps", "max"]
    cmd += ENGINE_CASES[case] + ["--duration", str(int(seconds)), "--output", str(out)]
    env = None if code_dir is None else {**os.environ, "PYTHONPATH": str(code_dir)}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=env, cwd=code_dir or None
    )
    if proc.returncode != 0:
        raise SystemExit(f"engine {case} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    doc = orjson.loads(out.read_bytes())
    s = doc["summary"]
    cpu = [r["shards_cpu_pct"] + r["coordinator_cpu_pct"] for r in doc["resources"]]
    engine_cpu_s = sum(cpu) / 100.0 * doc["plan"]["log_interval_s"]["value"]
    return {
        "rows_per_s": s["achieved_cps"],
        "changes": s["changes"],
        "errors": sum(s["errors_by_class"].values()) if "errors_by_class" in s else None,
        "p99_ms": s["latency_ms"]["p99"],
        "engine_cpu_s_per_10k": round(engine_cpu_s / max(1, s["changes"]) * 10_000, 4),
        "server_row_changes": sum(doc["server"]["row_changes"].values()),
        "driver": doc["environment"]["driver"],
        "layout": layout(doc["plan"]),
    }


def layout(plan: dict) -> str:
    """How the shards sat in OS processes, as the results file says."""
    n, how = plan["processes"]["value"], "multiplexed" if plan["multiplex"]["value"] else ""
    auto = " (auto)" if plan["multiplex"]["source"].startswith("auto") else ""
    if n == plan["workers"]["value"] and not how:
        return "one process per shard"
    return f"{n} {how or 'threaded'} process(es){auto}"


def _sysbench(test: str, port: int, seconds: float, options: list[str], counted: str) -> dict:
    """Prepare, run and clean up one sysbench ``test``; rows/s from the ``counted`` line."""
    base = [
        "sysbench", test, "--mysql-host=127.0.0.1", f"--mysql-port={port}",
        "--mysql-user=root", "--mysql-db=sbtest", *options,
    ]  # fmt: skip
    subprocess.run([*base, "cleanup"], capture_output=True, check=False)
    subprocess.run([*base, "prepare"], capture_output=True, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [*base, f"--time={int(seconds)}", "--report-interval=0", "run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_s = _children_cpu_s(before)  # sysbench's own CPU, the run step only
    subprocess.run([*base, "cleanup"], capture_output=True, check=False)
    rows = int(re.search(counted + r":\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    total_s = float(re.search(r"total time:\s+([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    return {
        "rows_per_s": round(rows / total_s, 1),
        "rows": rows,
        "time_s": total_s,
        "client_cpu_s_per_10k": round(cpu_s / max(1, rows) * 10_000, 4),
    }


def _children_cpu_s(before: resource.struct_rusage) -> float:
    """User + system CPU of the child processes waited for since ``before``."""
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return now.ru_utime - before.ru_utime + now.ru_stime - before.ru_stime


def sysbench_insert(port: int, threads: int, seconds: float) -> dict:
    options = ["--tables=1", "--table-size=10000", f"--threads={threads}"]
    return _sysbench("oltp_insert", port, seconds, options, "write")


def sysbench_bulk(port: int, threads: int, seconds: float) -> dict:
    options = [f"--threads={threads}"]
    return _sysbench("bulk_insert", port, seconds, options, "total number of events")


def raw_run(port: int, kind: str, rows: int, procs: int, seconds: float) -> dict:
    shape = raw_loop.Shape(kind, rows, procs, seconds, "127.0.0.1", port, "inventory")
    return raw_loop.run(shape)


def ensure_sysbench() -> None:
    if shutil.which("sysbench"):
        return
    subprocess.run(["apt-get", "install", "-y", "-q", "sysbench"], check=True)


BEGIN, END = "<!-- ceiling:begin (generated by benchmarks/ceiling.py) -->", "<!-- ceiling:end -->"
REFERENCES = {
    "insert100": "raw loop, 2 processes, 100-row multi-row INSERT",
    "update100": "raw loop, 2 processes, 100-row UPDATE ... WHERE id IN (random distinct rows)",
    "single16": "sysbench oltp_insert --threads=16 (single-row autocommit INSERT)",
    "single16procs": "sysbench oltp_insert --threads=16 (single-row autocommit INSERT)",
    "bulk1000": "sysbench bulk_insert --threads=2 (2-integer rows, ~512 KiB statements)",
}


def markdown(report: dict) -> str:
    """The RESULTS.md section for one report: machine, server settings, one row per case."""
    srv, m = report["server"], report["server"]["machine"]
    driver = next(iter(report["cases"].values()))["engine_runs"][0]["driver"]
    lines = [
        "## Ceiling: the engine against a raw loop and sysbench, same run, same server",
        "",
        f"Machine: {m['cpus']} CPUs, {m['platform']}. Server: {srv.get('version')}, "
        f"log_bin={srv.get('log_bin')}, binlog_format={srv.get('binlog_format')}, "
        f"sync_binlog={srv.get('sync_binlog')}, innodb_flush_log_at_trx_commit="
        f"{srv.get('innodb_flush_log_at_trx_commit')}. Engine driver: {driver['name']} "
        f"{driver['version']} ({driver['implementation']}), text protocol; with "
        "multiplexed shards (`--multiplex`, the default at batch 1 with more shards than "
        "CPUs) the driver only opens the connections and the round trips go through "
        "`loadengine.wire` (multiplexed-wire). "
        f"{report['repeat']} interleaved pairs of {report['seconds']:.0f} s runs (the order "
        "alternated pair by pair, every run on freshly created tables); rows/s median "
        "(min-max); ratio of medians = engine median / reference median; pair ratios = "
        "engine / reference inside each pair (robust to the machine drifting).",
        "",
        f"Command: `.venv/bin/python benchmarks/ceiling.py --repeat {report['repeat']} "
        f"--seconds {report['seconds']:.0f}` ({report.get('finished', '')})",
        "",
        "| case | engine rows/s | engine CPU-s per 10K | reference | reference rows/s | "
        "reference CPU-s per 10K | ratio of medians | pair ratios, median (min-max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, e in report["cases"].items():
        eng, cpu = e["engine_rows_per_s"], e["engine_cpu_s_per_10k"]
        ref = e.get("reference_rows_per_s")
        pairs = pair_ratios(e["engine_runs"], e["reference_runs"]) if ref else None
        ref_cpu = e.get("reference_cpu_s_per_10k")
        lines.append(
            f"| `{' '.join(e['engine_args'])}` ({e['engine_runs'][0].get('layout', '?')}) | "
            f"{eng['median']:,.0f} ({eng['min']:,.0f}-"
            f"{eng['max']:,.0f}) | {cpu['median']:.4f} | {REFERENCES.get(case, '-')} | "
            + (f"{ref['median']:,.0f} ({ref['min']:,.0f}-{ref['max']:,.0f})" if ref else "-")
            + (f" | {ref_cpu['median']:.4f}" if ref_cpu else " | -")
            + f" | {e.get('ratio_of_medians', '-')} | "
            + (f"{pairs['median']:.3f} ({pairs['min']:.3f}-{pairs['max']:.3f})" if pairs else "-")
            + " |"
        )
    return "\n".join(lines)


AB_BEGIN = "<!-- ceiling-ab:begin (generated by benchmarks/ceiling.py --baseline) -->"
AB_END = "<!-- ceiling-ab:end -->"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def baseline_checkout(rev: str) -> Path:
    """A worktree of ``rev`` (reused if there): the baseline engine runs from it."""
    commit = _git("rev-parse", rev)
    path = Path(tempfile.gettempdir()) / f"loadengine-baseline-{commit[:12]}"
    if not (path / "loadengine").is_dir():
        _git("worktree", "add", "--detach", "--force", str(path), commit)
    return path


def ab_entry(eng: list[dict], base: list[dict], ref: list[dict]) -> dict:
    """Current against baseline: medians, ratio of medians, ratio inside each triple."""
    ratios = [round(e["rows_per_s"] / b["rows_per_s"], 3) for e, b in zip(eng, base, strict=True)]
    out: dict = {
        "baseline_runs": base,
        "baseline_rows_per_s": spread([r["rows_per_s"] for r in base]),
        "ab_ratio_of_medians": round(
            statistics.median(r["rows_per_s"] for r in eng)
            / statistics.median(r["rows_per_s"] for r in base),
            3,
        ),
        "ab_pair_ratios": {**spread(ratios), "each": ratios},
    }
    if ref:
        out["baseline_ratio_of_medians"] = round(
            out["baseline_rows_per_s"]["median"] / statistics.median(r["rows_per_s"] for r in ref),
            3,
        )
    return out


def markdown_ab(report: dict) -> str:
    base, cur = report["baseline"], report["current"]
    lines = [
        f"## A/B: the default workload at {cur['commit'][:7]} against {base['commit'][:7]}",
        "",
        f"The default `inventory` workload run by the current engine ({cur['commit'][:7]}) "
        f"and by the engine at {base['commit'][:7]} (`--baseline {base['revision']}`, run "
        "from a worktree of that commit with the same interpreter and packages), each "
        f"beside the case's reference, in {report['repeat']} triples of "
        f"{report['seconds']:.0f} s runs on one fresh private server (binary log ROW, "
        "sync_binlog=1), every run on freshly created tables, in the order reference, "
        "baseline, current, then reversed for the next triple. A/B = current / baseline.",
        "",
        f"Command: `.venv/bin/python benchmarks/ceiling.py --baseline {base['revision']} "
        f"--cases {','.join(report['cases'])} --repeat {report['repeat']} --seconds "
        f"{report['seconds']:.0f}` ({report.get('finished', '')})",
        "",
        "| case | current rows/s | baseline rows/s | A/B ratio of medians | A/B within "
        "triples, median (min-max) | current / reference | baseline / reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, e in report["cases"].items():
        cur_r, base_r, ab = e["engine_rows_per_s"], e["baseline_rows_per_s"], e["ab_pair_ratios"]
        lines.append(
            f"| `{' '.join(e['engine_args'])}` | {cur_r['median']:,.0f} "
            f"({cur_r['min']:,.0f}-{cur_r['max']:,.0f}) | {base_r['median']:,.0f} "
            f"({base_r['min']:,.0f}-{base_r['max']:,.0f}) | **{e['ab_ratio_of_medians']}** | "
            f"{ab['median']:.3f} ({ab['min']:.3f}-{ab['max']:.3f}) | "
            f"{e.get('ratio_of_medians', '-')} ({REFERENCES.get(case, '-')}) | "
            f"{e.get('baseline_ratio_of_medians', '-')} |"
        )
    return "\n".join(lines)


def sections(report: dict) -> tuple[str, str, str]:
    """Which RESULTS.md section a report fills, and its text."""
    if "baseline" in report:
        return AB_BEGIN, AB_END, markdown_ab(report)
    return BEGIN, END, markdown(report)


def environment(d: Dsn) -> dict:
    conn = database.connect(d)
    try:
        env = queries.server_environment(conn)
    finally:
        conn.close()
    env["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    return env


def case_entry(case: str, eng: list[dict], ref: list[dict]) -> dict:
    """Medians, spread and the ratio of medians for one case's runs."""
    entry: dict = {
        "engine_args": ENGINE_CASES[case],
        "engine_rows_per_s": spread([r["rows_per_s"] for r in eng]),
        "engine_cpu_s_per_10k": spread([r["engine_cpu_s_per_10k"] for r in eng]),
        "engine_runs": eng,
    }
    if ref:
        entry["reference_rows_per_s"] = spread([r["rows_per_s"] for r in ref])
        entry["reference_runs"] = ref
        cpu = [r["client_cpu_s_per_10k"] for r in ref if "client_cpu_s_per_10k" in r]
        if cpu:
            entry["reference_cpu_s_per_10k"] = spread(cpu)
        entry["ratio_of_medians"] = round(
            entry["engine_rows_per_s"]["median"] / entry["reference_rows_per_s"]["median"], 3
        )
        entry["pair_ratios"] = pair_ratios(eng, ref)
    return entry


def pair_ratios(eng: list[dict], ref: list[dict]) -> dict:
    """Engine / reference within each pair (two runs next to each other in time): robust
    to the machine drifting during the benchmark, which moves both medians apart."""
    ratios = [round(e["rows_per_s"] / r["rows_per_s"], 3) for e, r in zip(eng, ref, strict=False)]
    return {**spread(ratios), "each": ratios}


def pairs(
    case: str,
    repeat: int,
    engine: Callable[[int], dict],
    reference: Callable[[], dict] | None,
    d: Dsn,
    baseline: Callable[[int], dict] | None = None,
) -> tuple[list[dict], list[dict], list[dict]]:
    """``repeat`` pairs (triples with a baseline), each run on fresh tables, the order
    reversed every other time: the second run of a pair used to meet a table (and a
    unique email index) one run bigger, and it was always the engine's. With a baseline
    the triples go reference, baseline, engine then engine, baseline, reference: each of
    baseline and engine follows the other equally often (a run pays for the background
    flushing of the run before it; rotating the triple instead put the engine right after
    the baseline four times in five)."""
    eng: list[dict] = []
    ref: list[dict] = []
    base: list[dict] = []
    sides: list[tuple[str, list[dict], Callable[[int], dict]]] = [("engine", eng, engine)]
    if baseline is not None:
        sides.insert(0, ("baseline", base, baseline))
    if reference is not None:
        sides.insert(0, ("reference", ref, lambda _i: reference()))
    for i in range(repeat):
        order = sides if i % 2 == 0 else sides[::-1]
        for name, runs, run in order:
            schema_admin.reset(d)
            runs.append(run(i))
            print(case, name, i, runs[-1]["rows_per_s"], flush=True)
    return eng, ref, base


def main() -> None:  # noqa: PLR0915 - the benchmark, top to bottom
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", default=None, help="only regenerate the Markdown from JSON")
    ap.add_argument("--markdown", default=str(RESULTS_MD))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument(
        "--cases",
        default="insert100,update100,single16,single16procs,bulk1000,default100",
    )
    ap.add_argument("--out", default="results/ceiling.json")
    ap.add_argument("--baseline", default=None, help="git revision to A/B the engine against")
    a = ap.parse_args()
    if a.render:
        report = orjson.loads(Path(a.render).read_bytes())
        begin, end, text = sections(report)
        write_section(Path(a.markdown), begin, end, text)
        return
    code_dir = None if a.baseline is None else baseline_checkout(a.baseline)
    ensure_sysbench()
    server = embedded.start()
    d = server.dsn("inventory")
    schema_admin.init(d)
    env = environment(d)
    sb = Dsn("root", "", "127.0.0.1", server.port, "sbtest")
    schema_admin.init(sb)  # creates the database; sysbench adds its table
    references = {
        "insert100": lambda: raw_run(server.port, "insert", 100, 2, a.seconds),
        "update100": lambda: raw_run(server.port, "update", 100, 2, a.seconds),
        "single16": lambda: sysbench_insert(server.port, 16, a.seconds),
        "single16procs": lambda: sysbench_insert(server.port, 16, a.seconds),
        "bulk1000": lambda: sysbench_bulk(server.port, 2, a.seconds),
    }
    report: dict = {"server": env, "seconds": a.seconds, "repeat": a.repeat, "cases": {}}
    if a.baseline:
        report["baseline"] = {"revision": a.baseline, "commit": _git("rev-parse", a.baseline)}
        report["current"] = {"commit": _git("rev-parse", "HEAD")}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            for case in a.cases.split(","):
                engine = lambda i, c=case: engine_run(d, c, a.seconds, Path(tmpdir), i)  # noqa: E731
                baseline = None
                if code_dir is not None:
                    baseline = lambda i, c=case: engine_run(  # noqa: E731
                        d, c, a.seconds, Path(tmpdir), i, code_dir
                    )
                eng, ref, base = pairs(case, a.repeat, engine, references.get(case), d, baseline)
                report["cases"][case] = entry = case_entry(case, eng, ref)
                if base:
                    entry.update(ab_entry(eng, base, ref))
                print(case, {k: v for k, v in entry.items() if "runs" not in k}, flush=True)
    finally:
        server.stop()
        server.remove()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M")
    Path(a.out).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    begin, end, text = sections(report)
    write_section(Path(a.markdown), begin, end, text)
    print(f"written {a.out} at {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
