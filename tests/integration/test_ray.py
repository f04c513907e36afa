"""The Ray backend against the real private server, on a local Ray runtime.

Same books as the local backend: the audit reads the binary log; shard actors are
killed with SIGKILL; two Ray nodes on this machine show shards spread across nodes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from loadengine.dsn import Dsn

from .conftest import load_results, run_cli, start_cli, wait_for_line


def _args(d: Dsn, out: Path, *more: str) -> list[str]:
    return ["run", "--dsn", d.to_url(), "--backend", "ray", "--audit", "--output", str(out), *more]


def _books_exact(doc: dict) -> None:
    a, s = doc["audit"], doc["summary"]
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0), a
    assert a["binlog_changes"] == s["changes"], (a["binlog_changes"], s["changes"])
    assert doc["server"]["row_changes"] is not None
    server_rows = sum(doc["server"]["row_changes"].values())
    setup = sum(sum(k.values()) for sh in doc["shards"] for k in sh["setup_changes"].values())
    assert server_rows == s["changes"] + setup


def test_ray_backend_run_within_1_percent_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = run_cli(
        *_args(dsn, out, "--target-cps", "3000", "--duration", "10", "--workers", "2"),
        timeout_s=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["backend"] == "ray" and doc["plan"]["backend"]["value"] == "ray"
    s = doc["summary"]
    assert abs(s["changes"] - 30_000) <= 300, s["changes"]
    _books_exact(doc)
    for shard in doc["shards"]:
        assert shard["pid"] and shard["node_id"] and shard["node"] and shard["hostname"]
        assert shard["driver"] == "c-extension"  # the actor's own process loads it
        assert abs(shard["clock_offset_us"]) <= 1_000_000
        assert 0 <= shard["clock_offset_bound_us"] < 1_000_000
    measured = [r for r in doc["resources"] if r["nodes"]]
    assert measured and all(len(r["per_shard_cpu_pct"]) == 2 for r in measured)
    assert all(n["ram_total_bytes"] > 0 for n in measured[-1]["nodes"])


def _actor_pids(cli: psutil.Process) -> list[int]:
    """ShardHost actors: the parents of the shard processes (Ray names their processes)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ShardHost" in cmd:
            found.append(p.info["pid"])
    return sorted(found)


def test_ray_shard_actor_killed_restarts_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        *_args(
            dsn,
            out,
            "--target-cps",
            "1000",
            "--duration",
            "10",
            "--workers",
            "2",
            "--on-shard-failure",
            "restart",
        )
    )
    wait_for_line(proc, "[   3s]", timeout_s=90)
    actors = _actor_pids(psutil.Process(proc.pid))
    assert len(actors) == 2, actors
    os.kill(actors[0], signal.SIGKILL)
    killed_at = time.monotonic()
    line = wait_for_line(proc, "DIED", timeout_s=30)
    assert time.monotonic() - killed_at < 5.0
    assert "restarted" in line
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "completed"
    (failure,) = doc["failures"]
    assert failure["action"] == "restarted" and failure["exit_code"] is None
    assert doc["summary"]["changes"] == 10_000  # nothing lost, nothing counted twice
    _books_exact(doc)
    restarted = doc["shards"][failure["shard"]]
    assert restarted["generation"] == 1


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[str]:
    """A Ray cluster of two nodes (two raylets) on this machine, one CPU each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


def test_ray_shards_spread_over_two_nodes(dsn: Dsn, tmp_path: Path, two_nodes: str) -> None:
    out = tmp_path / "r.json"
    proc = run_cli(
        *_args(dsn, out, "--ray-address", two_nodes, "--target-cps", "1000", "--duration", "4"),
        "--workers",
        "2",
        timeout_s=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    nodes = {sh["node_id"] for sh in doc["shards"]}
    assert len(nodes) == 2, doc["shards"]
    _books_exact(doc)
    assert doc["summary"]["changes"] == 4_000
    assert {n["node"] for r in doc["resources"] for n in r["nodes"]} == {
        sh["node"] for sh in doc["shards"]
    }


def test_more_workers_than_cluster_cpus_is_one_line(
    dsn: Dsn, tmp_path: Path, two_nodes: str
) -> None:
    out = tmp_path / "r.json"
    proc = run_cli(*_args(dsn, out, "--ray-address", two_nodes, "--workers", "3"), timeout_s=120)
    assert proc.returncode == 1
    assert "--workers 3: the Ray cluster has 2 free CPUs" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
