"""Start-up cost: ``import paygate`` and ``paygate --help``, each in a fresh interpreter.

Every command runs many times, interleaved with a bare interpreter start
(``python -c pass``) of the same venv; the figure is the median of the per-round
differences, so interpreter start-up (and ``site``) is not counted. ``import pydantic``
is measured alongside as a yardstick: paygate's models are pydantic models, so it is the
floor of what ``import paygate`` can cost on the machine. ``-X importtime`` shows where
the time goes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ._stats import Summary, summarize

__all__ = ["ImportProfile", "StartupRow", "import_profile", "measure_startup"]


@dataclass(frozen=True)
class StartupRow:
    """One command: wall time above a bare interpreter start, in milliseconds."""

    name: str
    command: str
    cost: Summary  # per-round (command - bare), ms
    total: Summary  # the command's own wall time, ms


@dataclass(frozen=True)
class ImportProfile:
    """The heaviest imports under ``import paygate`` (``-X importtime``), in ms."""

    total: float
    top: list[tuple[str, float]]  # (module, cumulative ms) of paygate's direct imports
    heavy: list[tuple[str, float]]  # third-party packages by cumulative ms


def _paygate_script() -> list[str]:
    script = Path(sys.executable).with_name("paygate")
    if script.exists():
        return [str(script)]
    found = shutil.which("paygate")
    if found:
        return [found]
    return [sys.executable, "-c", "from paygate.cli import main; main()"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_env())
    return (time.perf_counter() - start) * 1000.0


def measure_startup(runs: int) -> list[StartupRow]:
    """``import paygate``, ``import pydantic`` and ``paygate --help`` above a bare start."""
    py = sys.executable
    commands = {
        "import paygate": [py, "-c", "import paygate"],
        "import pydantic (yardstick)": [py, "-c", "import pydantic"],
        "paygate --help": [*_paygate_script(), "--help"],
    }
    bare = [py, "-c", "pass"]
    for cmd in [bare, *commands.values()]:  # warm the OS file cache and .pyc files
        _wall(cmd)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    totals: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            base = _wall(bare)
            own = _wall(cmd)
            samples[name].append(own - base)
            totals[name].append(own)
    return [
        StartupRow(
            name,
            " ".join(["python", *cmd[1:]]) if cmd[0] == py else f"paygate {cmd[-1]}",
            summarize(samples[name]),
            summarize(totals[name]),
        )
        for name, cmd in commands.items()
    ]


def import_profile(runs: int = 5) -> ImportProfile:
    """Median ``-X importtime`` breakdown of ``import paygate``."""
    per_run: list[dict[str, tuple[int, float]]] = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import paygate"],
            check=True,
            capture_output=True,
            text=True,
            env=_env(),
        )
        rows: dict[str, tuple[int, float]] = {}
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = line.split("|")
            try:
                cum = float(cumulative.strip()) / 1000.0
            except ValueError:
                continue
            depth = (len(name) - len(name.lstrip(" "))) // 2
            rows[name.strip()] = (depth, cum)
        per_run.append(rows)

    def med(name: str) -> float:
        values = sorted(r[name][1] for r in per_run if name in r)
        return values[len(values) // 2] if values else 0.0

    first = per_run[0]
    total = med("paygate")
    top = sorted(
        ((n, med(n)) for n, (d, _) in first.items() if d == 1 and n.startswith("paygate.")),
        key=lambda x: -x[1],
    )
    heavy = sorted(
        (
            (n, med(n))
            for n, (_d, _) in first.items()
            if "." not in n
            and not n.startswith(("paygate", "_"))
            and n not in sys.stdlib_module_names
        ),
        key=lambda x: -x[1],
    )
    return ImportProfile(total, top[:8], heavy[:8])
