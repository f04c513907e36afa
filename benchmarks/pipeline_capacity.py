"""The reference pipeline's capacity on this machine: ``loadengine suite pipeline``.

Runs the built-in suite's "pipeline capacity" search (a private server, a real Debezium
3.6 publishing to the local RabbitMQ, the engine followed live at the sink): step up from
1,000 CPS, then bisect, a trial passing only when the engine holds the target, the sink
gets every change exactly (none lost, duplicated, extra or out of order) and the end-to-end
lag p99 stays under 2 s. Writes the trials, with each one's evidence, to
``benchmarks/RESULTS.md``. Run it with nothing else on the machine.

    .venv/bin/python benchmarks/pipeline_capacity.py [--results-dir results/capacity]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import RESULTS_MD, write_section

BEGIN, END = "<!-- pipeline_capacity:begin -->", "<!-- pipeline_capacity:end -->"


def trial_row(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    sink = s.get("sink") or {}
    lag = sink.get("e2e_lag_ms") or {}
    failed = [t["name"] for t in doc.get("thresholds", []) if not t["pass"]]
    verdict = "pass" if not failed and sink.get("clean") else "FAIL " + ", ".join(failed)
    target = doc["plan"]["target_cps"]["value"]
    return (
        f"| {target:,} | {s['achieved_cps']:,.0f} | {s['efficiency'] * 100:.2f} % | "
        f"{sink.get('changes', 0):,} / {s['changes']:,} | {sink.get('lost', '-')} / "
        f"{sink.get('duplicated', '-')} / {sink.get('out_of_order', '-')} | "
        f"{lag.get('p50')} / {lag.get('p99')} | {sink.get('caught_up_after_s')} | {verdict} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default="results/pipeline-capacity")
    ap.add_argument("--markdown", default=str(RESULTS_MD))
    a = ap.parse_args()
    out = Path(a.results_dir)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cmd = [sys.executable, "-m", "loadengine", "suite", "pipeline", "--results-dir", str(out)]
    code = subprocess.run(cmd, check=False).returncode
    search = orjson.loads((out / "pipeline-capacity.search.json").read_bytes())
    docs = sorted(
        (orjson.loads(p.read_bytes()) for p in out.glob("pipeline-capacity-*[0-9].json")),
        key=lambda d: d["plan"]["target_cps"]["value"],
    )
    lines = [
        "## Reference pipeline capacity (`benchmarks/pipeline_capacity.py`)",
        "",
        f"`loadengine suite pipeline` at {started} (exit {code}): private MariaDB -> "
        "Debezium 3.6.3 (embedded engine, JVM in-process of `loadengine debezium`) -> "
        "RabbitMQ, the engine at 4 shards, batch 10, 10 s per trial, followed live at the "
        "sink. Pass: efficiency >= 0.99, latency p99 <= 250 ms, sink exact, e2e lag p99 <= "
        "2,000 ms.",
        "",
        f"**Highest sustainable: {search['max_sustainable_cps'] or 0:,} CPS**; first failing: "
        f"{search['first_failing_cps'] or '-'} CPS.",
        "",
        "| target | achieved | efficiency | sink / engine changes | lost / dup / out of order "
        "| e2e p50 / p99 ms | caught up after s | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *(trial_row(d) for d in docs),
    ]
    write_section(Path(a.markdown), BEGIN, END, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
