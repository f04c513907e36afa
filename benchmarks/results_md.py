"""What the benchmark scripts share: median and spread, and their generated sections of
``benchmarks/RESULTS.md`` (each script owns the text between its own two markers)."""

from __future__ import annotations

import statistics
from pathlib import Path

RESULTS_MD = Path(__file__).parent / "RESULTS.md"


def spread(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def write_section(path: Path, begin: str, end: str, body: str) -> None:
    """Replace the text between ``begin`` and ``end`` in ``path`` (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
