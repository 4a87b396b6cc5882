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


def _adapter_specs(sandbox: Any) -> list[dict[str, Any]]:
    from reliability._workers import charge_spec

    from paygate import Card, Konbini, PosLine, PosSale, Wallet

    customer = sandbox.credentials()["pokepay"]["customers"]["funded"]
    specs = []
    for i in range(COUNT // 2):
        amount = 500 + i
        specs += [
            charge_spec("payjp", f"kill-payjp-{i}", amount, Card(token="tok_success")),
            charge_spec(
                "univapay",
                f"kill-univapay-{i}",
                amount,
                Konbini(store="lawson", customer_name="停止 太郎", phone="0364413400"),
            ),
            charge_spec("pokepay", f"kill-pokepay-{i}", amount, Wallet(customer_id=customer)),
            charge_spec(
                "smaregi",
                f"kill-smaregi-{i}",
                amount,
                PosSale(
                    store_id="1", terminal_id="1", lines=(PosLine(name="k", unit_price=amount),)
                ),
            ),
        ]
    return specs


def test_sigkill_across_adapters_then_rerun(
    sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Path
) -> None:
    """The same, on the real adapters: keyed (PAY.JP, UnivaPay's two POSTs), lookup only
    (Smaregi) and key plus lookup (Pokepay's request_id)."""
    from reliability.chaos import provider_key

    rng = random.Random("crash-adapters")
    names = ("payjp", "univapay", "pokepay", "smaregi")
    config = {"store": "memory://", "accounts": {n: paygate_accounts[n] for n in names}}
    store = f"sqlite:///{tmp_path / 'crash-adapters.db'}"
    specs = _adapter_specs(sandbox)
    for provider in names:
        sandbox.fault(provider, "latency", method="POST", latency_ms=15, probability=0.5, seed=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    argv = [
        sys.executable,
        "-m",
        "reliability._workers",
        json.dumps(config),
        store,
        json.dumps(specs),
    ]
    for _ in range(3):
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        target = rng.randrange(1, len(specs))
        done = 0
        deadline = time.monotonic() + 60
        while done < target and time.monotonic() < deadline:
            if not child.stdout.readline():
                break
            done += 1
        time.sleep(rng.uniform(0, 0.03))  # land inside a call, sometimes between calls
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    sandbox.clear_faults()
    final = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert final.returncode == 0, final.stderr[-2000:]
    refs = [line.split(" ", 1)[1] for line in final.stdout.splitlines()]
    assert len(refs) == len(specs)
    assert not [r for r in refs if r in ("in_progress", "unknown") or r.startswith("error:")], refs
    ledger = sandbox.ledger()
    kinds = {"pokepay": "payment", "smaregi": "transaction"}
    for spec in specs:
        wanted = provider_key(spec["account"], spec["key"])
        kind = kinds.get(spec["account"], "charge")
        objects = [e for e in ledger[spec["account"]] if e.kind == kind and e.key == wanted]
        assert len(objects) == 1, (spec["key"], objects)
