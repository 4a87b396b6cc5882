"""The README stays true: its test command is the one CI runs, its matrix is the code's."""

from __future__ import annotations

import re
from pathlib import Path

from paygate.cli._demo import BUILT_IN
from paygate.cli._matrix import capability_rows

ROOT = Path(__file__).resolve().parent.parent


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(
        r"^(python3 -m pip install -q uv && python3 -m uv run [^\n#]+?)\s*$", readme, re.M
    )
    test_command = next(c for c in commands if c.endswith("pytest"))
    assert test_command in ci.splitlines()


def test_capability_matrix_matches_the_adapters() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- capability-matrix")[1].split("<!-- /capability-matrix -->")[0]
    rows = [
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in block.splitlines()
        if line.startswith("|")
        and not line.startswith("|---")
        and not line.startswith("| provider")
    ]
    expected = [row[:8] for row in capability_rows() if row[0] in BUILT_IN]
    assert sorted(rows) == sorted(expected)
