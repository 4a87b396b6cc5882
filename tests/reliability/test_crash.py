"""Crash test: a child charging in a loop is killed with SIGKILL at random points; rerun
with the same keys, every charge exists exactly once at the provider."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

COUNT = 30
ROOT = Path(__file__).resolve().parents[2]


def _child(config: dict[str, Any], store: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.Popen(
        [sys.executable, "-m", "fakepay.workers", json.dumps(config), store, str(COUNT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("mode", ["keyed", "lookup"])
def test_sigkill_at_random_points_then_rerun(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path, mode: str
) -> None:
    rng = random.Random(f"crash-{mode}")
    config = fake_config(mode)
    store = f"sqlite:///{tmp_path / 'crash.db'}"
    # Some responses are lost after the provider committed, as in a real crash window.
    fake_sandbox.fault(
        "fakepay",
        "latency",
        path="^/charges$",
        method="POST",
        latency_ms=20,
        probability=0.5,
        seed=7,
    )
    kills = 0
    for _ in range(4):
        child = _child(config, store)
        # Kill somewhere inside the loop: after a random number of completed charges.
        target = rng.randrange(1, COUNT)
        assert child.stdout is not None
        done = 0
        deadline = time.monotonic() + 60
        while done < target and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            done += 1
        time.sleep(rng.uniform(0, 0.02))  # land inside a call, sometimes between calls
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        kills += 1
    fake_sandbox.clear_faults()
    final = _child(config, store)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-2000:]
    lines = [line.split() for line in out.splitlines()]
    assert [int(i) for i, _ in lines] == list(range(COUNT))
    refs = [ref for _, ref in lines]
    assert len(set(refs)) == COUNT
    orders = [c["order"] for c in fake_emulator.charges.values()]
    assert len(orders) == COUNT, "a key was charged twice (or lost)"
    assert len(set(orders)) == COUNT
    assert kills == 4
