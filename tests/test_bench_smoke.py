"""The benchmark package runs: one quick overhead measurement against the fake provider.

Only the shape of the results is checked, never a timing (see bench/ for the numbers).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.overhead import measure_provider  # noqa: E402
from bench.report import Results, write_markdown  # noqa: E402


def test_overhead_and_report_on_the_fake_provider(fake_sandbox: Any, tmp_path: Path) -> None:
    rows = measure_provider("fakepay", fake_sandbox.account_settings("fakepay"), rounds=2, warmup=1)
    assert {(row.operation, row.store) for row in rows} == {
        ("charge", "memory"),
        ("charge", "sqlite"),
        ("status", "memory"),
        ("status", "sqlite"),
    }
    assert all(row.calls == 1 for row in rows)
    assert all(row.raw.n == row.gateway.n == row.overhead.n == 2 for row in rows)

    results = Results(
        command="python -m bench",
        quick=True,
        sandbox_mode="thread",
        machine={"CPU": "test"},
        commit="test",
        started="now",
        load_start="n/a",
        overhead=rows,
    )
    out = tmp_path / "results.md"
    write_markdown(results, out)
    text = out.read_text()
    assert "| fakepay | charge | 1 | memory |" in text
    assert "## Targets" in text
