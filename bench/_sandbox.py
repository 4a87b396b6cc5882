"""Start the sandbox once for the whole run: in a child process (default) or a thread."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from paygate.sandbox import SandboxClient

from ._fake import fake_classes

__all__ = ["Served", "sandbox"]

_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    """The running sandbox: its control client and, in process mode, the server's pid."""

    client: SandboxClient
    pid: int | None = None

    @property
    def url(self) -> str:
        """Root URL of the sandbox."""
        return self.client.url

    def cpu(self) -> float | None:
        """CPU seconds the server process has used so far (Linux; None otherwise)."""
        if self.pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # utime and stime are the 14th and 15th fields (after pid and comm).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _child() -> Iterator[Served]:
    proc = subprocess.Popen(  # the same interpreter and checkout as the client
        [sys.executable, "-m", "bench._server"],
        cwd=_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the sandbox process did not start")
        with SandboxClient(url) as client:
            yield Served(client, proc.pid)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _thread() -> Iterator[Served]:
    from paygate.sandbox import discover_emulators, running

    found, _skipped = discover_emulators(None)
    emulators = list(found.values())
    fake = fake_classes()
    if fake is not None:
        emulators.append(fake[1])
    with running(emulators=emulators) as client:
        yield Served(client)


@contextlib.contextmanager
def sandbox(mode: str = "process") -> Iterator[Served]:
    """The sandbox for the run (``mode``: ``process`` or ``thread``).

    The fake provider is registered in this process too, whichever the mode.
    """
    fake_classes()
    with _child() if mode == "process" else _thread() as served:
        yield served
