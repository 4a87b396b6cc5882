"""Start-up cost: ``import paygate``, the whole API, and ``paygate --help``.

Every command runs many times in a fresh interpreter, interleaved with a bare start
(``python -c pass``) of the same venv; the figure is the median of the per-round
differences, so interpreter start-up (and ``site``) is not counted.

``import paygate`` loads the error classes only; the gateways and models load on first
use, so ``from paygate import Gateway, Money`` is measured too: what an application
pays before its first charge (httpx comes later, with the first gateway). ``from pydantic
import BaseModel`` is the yardstick: paygate's models are pydantic models, so that is
the floor of the second figure on the machine. ``-X importtime`` shows where the time
goes.

Bytecode is compiled first (``compileall``), as ``pip install`` does: without it every
run would compile paygate and its dependencies from source (uv installs without
bytecode by default, and ``PYTHONDONTWRITEBYTECODE`` stops Python from caching it).
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
    return env


def compile_bytecode() -> None:
    """Compile paygate and every installed package to bytecode, as an installer would."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(site.getsitepackages())
    import paygate

    paths.update(str(Path(p).parent) for p in paygate.__path__)
    env = _env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *sorted(paths)],
        check=False,  # a broken file in some package must not stop the benchmark
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_env())
    return (time.perf_counter() - start) * 1000.0


def measure_startup(runs: int) -> list[StartupRow]:
    """Each start-up command's time above a bare interpreter start."""
    compile_bytecode()
    py = sys.executable
    commands = {
        "import paygate": [py, "-c", "import paygate"],
        "the whole API": [py, "-c", "from paygate import AsyncGateway, Gateway, Money, Card"],
        "pydantic (yardstick)": [py, "-c", "from pydantic import BaseModel"],
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


def _importtime(code: str) -> dict[str, tuple[int, float]]:
    """Each module's (depth, cumulative ms) from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
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
    return rows


def import_profile(runs: int = 5) -> ImportProfile:
    """Median ``-X importtime`` breakdown of ``from paygate import Gateway, Money``.

    The total is every top-level import the statement makes beyond a bare start (the
    gateway module loads lazily, at the top level, not under ``paygate``).
    """
    bare = set(_importtime("pass"))
    per_run = [_importtime("from paygate import Gateway, Money") for _ in range(runs)]

    def med(name: str) -> float:
        values = sorted(r[name][1] for r in per_run if name in r)
        return values[len(values) // 2] if values else 0.0

    totals = sorted(
        sum(cum for n, (d, cum) in r.items() if d == 0 and n not in bare) for r in per_run
    )
    total = totals[len(totals) // 2]
    first = per_run[0]
    top = sorted(
        ((n, med(n)) for n, (d, _) in first.items() if d <= 1 and n.startswith("paygate.")),
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
