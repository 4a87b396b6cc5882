"""A short description of the machine and the moment a run was made on it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["describe", "git_commit", "load"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    return "RAM unknown"


def load() -> str:
    """The 1/5/15-minute load averages, or ``n/a``."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def describe() -> dict[str, str]:
    """CPU, cores, memory, OS, Python and library versions."""
    import httpx
    import pydantic

    import paygate

    try:
        import sniffio  # noqa: F401
    except ImportError:
        sniffio_state = (
            "not installed (httpcore then re-attempts a failing `import sniffio`, a "
            "search of every sys.path entry, several times per async request)"
        )
    else:
        sniffio_state = "installed"
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical cores, {_memory()}",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "Libraries": f"paygate {paygate.__version__}, httpx {httpx.__version__}, "
        f"httpcore {_version('httpcore')}, pydantic {pydantic.VERSION}; "
        f"sniffio {sniffio_state}",
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def git_commit(root: Path) -> str:
    """The checkout's commit (short hash)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head
