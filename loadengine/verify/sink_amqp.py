"""``loadengine sink-check``: read the per-table queues over AMQP and check them (``sink``).

Needs pika (``pip install 'loadengine[sink]'``). Messages are fetched with ``basic_get``
and acknowledged after they are recorded; ``--drain`` keeps reading until every queue has
stayed empty for ``quiet_s`` or the timeout passes. Queue depth comes from the RabbitMQ
management API when it answers.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from loadengine.verify import ledger
from loadengine.verify.sink import BadMessage, SinkCheck, decode

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class SinkError(ValueError):
    """Bad input or a missing extra (one line, exit 2)."""


def _pika() -> Any:
    try:
        import pika
    except ImportError:
        raise SinkError("sink-check needs pika: pip install 'loadengine[sink]'") from None
    return pika


def load_run(results_path: str) -> tuple[dict[str, Any], list[tuple[str, ledger.TableLedger]]]:
    try:
        doc = orjson.loads(Path(results_path).read_bytes())
        name = doc["ledger"]["path"]
        led = orjson.loads((Path(results_path).resolve().parent / name).read_bytes())
        return doc, ledger.from_document(led)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SinkError(
            f"{results_path!r}: needs a results file with its change ledger ({exc})"
        ) from None


def queue_depths(api: str | None, queues: list[str], user: str, password: str) -> dict:
    if not api:
        return {}
    out: dict[str, int | None] = {}
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    for q in queues:
        url = f"{api.rstrip('/')}/api/queues/%2F/{urllib.parse.quote(q, safe='')}"
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                out[q] = int(orjson.loads(resp.read()).get("messages", 0))
        except (OSError, ValueError):
            out[q] = None
    return out


def consume(
    url: str,
    queues: list[str],
    check: SinkCheck,
    drain: bool,
    timeout_s: float,
    quiet_s: float = 2.0,
) -> int:
    """Read every queue until empty (or, with ``drain``, quiet for ``quiet_s``)."""
    pika = _pika()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    got, deadline, quiet_since = 0, time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            idle = True
            for q in queues:
                while True:
                    method, _props, body = ch.basic_get(queue=q, auto_ack=False)
                    if method is None:
                        break
                    idle = False
                    got += 1
                    try:
                        check.add(decode(body), time.time_ns() // 1000)
                    except BadMessage:
                        check.undecodable += 1
                    ch.basic_ack(method.delivery_tag)
            now = time.monotonic()
            if not idle:
                quiet_since = now
            elif not drain or now - quiet_since >= quiet_s:
                break
            else:
                time.sleep(0.1)
    finally:
        conn.close()
    return got


def run(
    results_path: str,
    url: str,
    prefix: str,
    tables: list[str],
    drain: bool,
    timeout_s: float,
    output: str | None,
    api: str | None,
) -> dict[str, Any]:
    doc, led = load_run(results_path)
    started = doc.get("started_at")
    origin_us = 0
    if started:
        import datetime as dt

        origin_us = int(dt.datetime.fromisoformat(started).timestamp() * 1e6)
    check = SinkCheck(led, origin_us)
    queues = [prefix + t for t in tables]
    received = consume(url, queues, check, drain, timeout_s)
    res = check.result()
    res["received_messages"] = received
    res["queues"] = queues
    parsed = urllib.parse.urlsplit(url)
    res["queue_depth_after"] = queue_depths(
        api, queues, parsed.username or "guest", parsed.password or "guest"
    )
    res["run_id"] = doc.get("run_id")
    if output:
        Path(output).write_bytes(
            orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
    return res


def summary_line(res: dict[str, Any]) -> str:
    lag = res["lag_ms"]
    verdict = "clean" if res["clean"] else "PROBLEMS"
    return (
        f"sink-check {verdict}: {res['events']:,} changes received "
        f"({res['received_messages']:,} messages); lost {res['lost']:,}, duplicated "
        f"{res['duplicated']:,} (redelivered {res['redelivered']:,}), extra {res['extra']:,}, "
        f"out of order {res['out_of_order']:,}; lag p50 {lag['p50']} ms p99 {lag['p99']} ms "
        f"max {lag['max']} ms"
    )
