"""The Ray backend against the real private server, on a local Ray runtime.

Same books as the local backend: the audit reads the binary log; shard actors are
killed with SIGKILL. Two hosts on this one machine: Ray worker nodes in network
namespaces of their own (made and removed by the fixture), the database and the Ray head
on the bridge between them; shards land on both and reach the database over it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import database, embedded, schema_admin

from .conftest import assert_audit_exact, load_results, run_cli, start_cli, wait_for_line


def _args(d: Dsn, out: Path, *more: str) -> list[str]:
    return ["run", "--dsn", d.to_url(), "--backend", "ray", "--audit", "--output", str(out), *more]


def _books_exact(doc: dict) -> None:
    assert_audit_exact(doc)
    s = doc["summary"]
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


def _actor_pids() -> list[int]:
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
    actors = _actor_pids()
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


# --- two hosts on this machine: Ray worker nodes in their own network namespaces -------


def _sh(*cmd: str, netns: str | None = None, env: dict[str, str] | None = None) -> None:
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    subprocess.run(full, check=True, capture_output=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def netns_hosts() -> Iterator[tuple[str, embedded.EmbeddedServer, list[str]]]:
    """Two 'hosts' (network namespaces with their own IP, joined by a bridge) each running a
    Ray worker node with one CPU; the Ray head (no CPUs) and the database are on the
    bridge's address in the root namespace. Everything is made and removed here."""
    tag = secrets.token_hex(2)
    net = f"10.{77 + int(tag, 16) % 100}.0"
    bridge, hosts = f"leb{tag}", [f"le{tag}a", f"le{tag}b"]
    ips = [f"{net}.2", f"{net}.3"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    srv = None
    try:
        _sh("ip", "link", "add", bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{net}.1/24", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        for i, (ns, ip) in enumerate(zip(hosts, ips, strict=True)):
            veth = f"{bridge}v{i}"
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            _sh("ip", "link", "set", veth, "master", bridge)
            _sh("ip", "link", "set", veth, "up")
            _sh("ip", "link", "set", f"{veth}p", "netns", ns)
            _sh("ip", "addr", "add", f"{ip}/24", "dev", f"{veth}p", netns=ns)
            _sh("ip", "link", "set", f"{veth}p", "up", netns=ns)
            _sh("ip", "link", "set", "lo", "up", netns=ns)
        srv = embedded.start(extra_args=("--bind-address=0.0.0.0",))  # 127.0.0.1 and the bridge
        d = Dsn("root", "", f"{net}.1", srv.port, "inventory")
        conn = database.connect(Dsn("root", "", "127.0.0.1", srv.port, "mysql"), timeout_s=5)
        database.execute(conn, f"CREATE USER 'root'@'{net}.%'")
        database.execute(conn, f"GRANT ALL ON *.* TO 'root'@'{net}.%'")
        conn.close()
        schema_admin.init(Dsn("root", "", "127.0.0.1", srv.port, "inventory"))
        port = str(embedded.free_port())
        head = [ray_bin, "start", "--head", f"--node-ip-address={net}.1", f"--port={port}"]
        _sh(*head, "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats", env=env)
        for ns, ip in zip(hosts, ips, strict=True):
            join = [ray_bin, "start", f"--address={net}.1:{port}", f"--node-ip-address={ip}"]
            _sh(*join, "--num-cpus=1", "--disable-usage-stats", netns=ns, env=env)
        yield f"{net}.1:{port}", srv, [d.to_url(), *ips]
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, check=False)
        if srv is not None:
            srv.stop()
            srv.remove()
        for ns in hosts:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def test_two_hosts_in_network_namespaces_actor_killed_books_exact(
    netns_hosts: tuple[str, embedded.EmbeddedServer, list[str]], tmp_path: Path
) -> None:
    address, _, (url, *ips) = netns_hosts
    out = tmp_path / "r.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env = {k: v for k, v in env.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    args = ["run", "--dsn", url, "--backend", "ray", "--ray-address", address, "--audit"]
    args += ["--target-cps", "1000", "--duration", "8", "--workers", "2"]
    args += ["--on-shard-failure", "restart", "--output", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadengine", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_line(proc, "[   3s]", timeout_s=90)
    os.kill(_actor_pids()[0], signal.SIGKILL)
    wait_for_line(proc, "DIED", timeout_s=30)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    (failure,) = doc["failures"]
    assert failure["action"] == "restarted"
    # each shard ran on a different host, reaching the database over the bridge
    assert sorted(sh["node_ip"] for sh in doc["shards"]) == sorted(ips)
    assert doc["summary"]["changes"] == 8_000
    _books_exact(doc)


def test_more_workers_than_cluster_cpus_is_one_line(
    netns_hosts: tuple[str, embedded.EmbeddedServer, list[str]], tmp_path: Path
) -> None:
    address, _, (url, *_) = netns_hosts
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    args = ["run", "--dsn", url, "--backend", "ray", "--ray-address", address]
    args += ["--workers", "3", "--output", str(tmp_path / "r.json")]
    proc = subprocess.run(
        [sys.executable, "-m", "loadengine", *args],
        env={**env, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "--workers 3: the Ray cluster has 2 free CPUs" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
