"""Soak: a long run at half the measured maximum, to show that nothing drifts.

1. Starts a private server (binary log on) and measures the maximum with a short
   ``--target-cps max`` run (same workers, batch and mix as the soak).
2. Runs ``--target-cps 0.5 x max`` for ``--minutes`` (default 30) with ``--audit``.
3. From the results file: engine RSS after warm-up vs at the end (must grow < 5 %),
   errors per minute (must be flat), achieved CPS per minute (median and spread), and
   the audit (must be clean). Prints a Markdown section to append to
   ``benchmarks/RESULTS.md``. Run it with nothing else on the machine.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--workers 4] [--batch-size 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadengine.server import embedded, schema_admin

WARMUP_S = 120


def run(dsn: str, out: Path, *args: str) -> dict:
    cmd = [sys.executable, "-m", "loadengine", "run", "--dsn", dsn, "--output", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 4):
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr}")
    return orjson.loads(out.read_bytes())


def per_minute(doc: dict, key: str) -> list[float]:
    minutes: dict[int, float] = {}
    for rec in doc["per_second"]:
        value = rec[key] if key != "errors" else sum(rec["errors"].values())
        minutes[rec["t_s"] // 60] = minutes.get(rec["t_s"] // 60, 0) + (value or 0)
    return [minutes[m] for m in sorted(minutes)]


def rss_mib(sample: dict) -> float:
    return (sample["coordinator_rss_bytes"] + sample["shards_rss_bytes"]) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--workers", default="4")
    ap.add_argument("--batch-size", default="10")
    a = ap.parse_args()
    shape = ["--workers", a.workers, "--batch-size", a.batch_size]
    server = embedded.start()
    tmp = Path(tempfile.mkdtemp(prefix="loadengine-soak-"))
    try:
        dsn = server.dsn()
        schema_admin.init(dsn)
        url = dsn.to_url()
        probe = run(url, tmp / "max.json", "--target-cps", "max", "--duration", "20", *shape)
        max_cps = probe["summary"]["achieved_cps"]
        target = int(max_cps * 0.5)
        soak = run(
            url,
            tmp / "soak.json",
            "--target-cps",
            str(target),
            "--duration",
            str(a.minutes * 60),
            "--log-interval",
            "10",
            "--audit",
            *shape,
        )
        report(soak, max_cps, target, a.minutes, shape)
        for r in soak["resources"][:: max(1, len(soak["resources"]) // 12)]:
            print(
                f"  t={r['t_s']:.0f}s coordinator {r['coordinator_rss_bytes'] / 2**20:.1f} MiB"
                f" shards {r['shards_rss_bytes'] / 2**20:.1f} MiB"
            )
    finally:
        server.stop()
        server.remove()


def report(doc: dict, max_cps: float, target: int, minutes: int, shape: list[str]) -> None:
    warmup_s = min(WARMUP_S, minutes * 15)  # a quarter of a short trial run
    samples = [s for s in doc["resources"] if s["t_s"] >= warmup_s]
    rss_start, rss_end = rss_mib(samples[0]), rss_mib(samples[-1])
    rss_max = max(rss_mib(s) for s in samples)
    growth = 100 * (rss_end - rss_start) / rss_start
    cps = [c / 60 for c in per_minute(doc, "changes")]
    errors = per_minute(doc, "errors")
    s, a = doc["summary"], doc["audit"]
    print(f"## Soak: {minutes} min at 50 % of the measured maximum")
    print()
    print(f"- shape: {' '.join(shape)}, default mix, binary log on, `sync_binlog=1`")
    print(
        f"- measured maximum (20 s, `--target-cps max`): {max_cps:,.0f} CPS; soak target "
        f"{target:,} CPS"
    )
    print(
        f"- status {doc['status']}, efficiency {100 * (s['efficiency'] or 0):.2f} %, "
        f"changes {s['changes']:,}, errors {s['error_count']}"
    )
    print(
        f"- achieved CPS per minute: median {statistics.median(cps):,.1f}, min {min(cps):,.1f}, "
        f"max {max(cps):,.1f}"
    )
    print(f"- errors per minute: min {min(errors):.0f}, max {max(errors):.0f}")
    print(
        f"- engine RSS after {warmup_s}s warm-up {rss_start:.1f} MiB, at the end "
        f"{rss_end:.1f} MiB (growth {growth:+.2f} %, max {rss_max:.1f} MiB): "
        f"{'flat' if growth < 5 else 'GROWING'}"
    )
    print(
        f"- p99 latency {s['latency_ms']['p99']:.1f} ms; audit missing/extra/duplicates "
        f"{a['missing']}/{a['extra']}/{a['duplicates']}, binlog {a['binlog_changes']:,} = "
        f"engine {a['engine_changes']:,}"
    )


if __name__ == "__main__":
    main()
