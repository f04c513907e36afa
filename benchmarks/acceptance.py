"""Acceptance runs for the engine, against a fresh private server with the binary log on.

For each case it runs ``loadengine run`` ``--repeat`` times and reports, per case, the
median and spread (min-max) of achieved CPS and efficiency, engine CPU-seconds per 10K
changes, and whether the engine's ``changes + setup_changes`` equal the server's own row
counters and the binary log's row events exactly. Run it with nothing else on the machine.

    .venv/bin/python benchmarks/acceptance.py [--repeat 3] [--cases 5k,10k] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadengine.core.dsn import Dsn
from loadengine.server import binlog, database, embedded, queries, schema_admin

CASES = {
    "2k": ["--target-cps", "2000", "--duration", "5", "--workers", "2", "--batch-size", "10"],
    "5k": ["--target-cps", "5000", "--duration", "15", "--workers", "4", "--batch-size", "10"],
    "10k": ["--target-cps", "10000", "--duration", "30"],
    "10k-w4": ["--target-cps", "10000", "--duration", "30", "--workers", "4"],
}


def _binlog_total(d: Dsn, doc: dict) -> int:
    conn = database.connect(d)
    try:
        logs = queries.binary_logs(conn)
    finally:
        conn.close()
    counts = binlog.count_window(
        d, doc["server"]["binlog_start"], doc["server"]["binlog_end"], logs
    )
    return sum(n for kinds in counts.values() for n in kinds.values())


def run_case(d: Dsn, args: list[str], tmp: Path, i: int) -> dict:
    out = tmp / f"r{i}.json"
    cmd = [
        sys.executable,
        "-m",
        "loadengine",
        "run",
        "--dsn",
        d.to_url(),
        *args,
        "--output",
        str(out),
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr}")
    doc = orjson.loads(out.read_bytes())
    s = doc["summary"]
    cpu = [r["coordinator_cpu_pct"] + r["shards_cpu_pct"] for r in doc["resources"]]
    engine_cpu_s = sum(cpu) / 100.0 * doc["plan"]["log_interval_s"]["value"]
    expected = s["changes"] + s["setup_changes_total"]
    return {
        "achieved_cps": s["achieved_cps"],
        "efficiency": s["efficiency"],
        "changes": s["changes"],
        "p99_ms": s["latency_ms"]["p99"],
        "engine_cpu_s_per_10k": round(engine_cpu_s / max(1, s["changes"]) * 10_000, 3),
        "server_row_changes": sum(doc["server"]["row_changes"].values()),
        "binlog_row_events": _binlog_total(d, doc),
        "expected_row_changes": expected,
        "wall_s": round(wall, 1),
        "driver": doc["environment"]["driver"]["implementation"],
    }


def spread(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="5k,10k")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    server = embedded.start()
    report: dict = {"cases": {}}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            for name in args.cases.split(","):
                runs = []
                for i in range(args.repeat):
                    d = Dsn("root", "", "127.0.0.1", server.port, f"bench_{name}_{i}")
                    schema_admin.init(d)
                    runs.append(run_case(d, CASES[name], Path(tmpdir), i))
                    print(name, i, runs[-1], flush=True)
                report["cases"][name] = {
                    "args": CASES[name],
                    "achieved_cps": spread([r["achieved_cps"] for r in runs]),
                    "efficiency": spread([r["efficiency"] for r in runs]),
                    "engine_cpu_s_per_10k": spread([r["engine_cpu_s_per_10k"] for r in runs]),
                    "counts_exact": all(
                        r["expected_row_changes"]
                        == r["server_row_changes"]
                        == r["binlog_row_events"]
                        for r in runs
                    ),
                    "runs": runs,
                }
    finally:
        server.stop()
        server.remove()
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2)
    if args.out:
        Path(args.out).write_bytes(text)
    print(text.decode())


if __name__ == "__main__":
    main()
