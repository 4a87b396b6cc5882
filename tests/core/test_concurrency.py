"""N workers charging with one key: one provider call; the rest replay or are told to wait."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from fakepay.workers import charge_once, process_worker

from paygate import Gateway, RetryPolicy


def test_threads_one_key_one_provider_call(
    fake_config: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    config = fake_config()
    store = f"sqlite:///{tmp_path / 'threads.db'}"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
            barrier.wait()
            results.append(charge_once(gw, "storm-1"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refs = {r for r in results if r != "in_progress"}
    assert len(refs) == 1
    assert len(fake_emulator.charges) == 1
    assert sum(1 for m, p in fake_emulator.requests if m == "POST") == 1


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_processes_one_key_one_provider_call(
    fake_config: Any,
    fake_emulator: Any,
    fake_sandbox: Any,
    tmp_path: Path,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    if store_kind == "postgres":
        store = str(request.getfixturevalue("postgres_url"))
    else:
        store = f"sqlite:///{tmp_path / 'procs.db'}"
    config = fake_config()
    # Give the winner time to hold the key while the others arrive.
    fake_sandbox.fault(
        "fakepay", "latency", path="^/charges$", method="POST", latency_ms=300, count=1
    )
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    key = f"storm-proc-{store_kind}-{uuid.uuid4().hex}"
    procs = [
        ctx.Process(target=process_worker, args=(config, store, key, start, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    results = [out.get(timeout=5) for _ in procs]
    refs = {r for r in results if r != "in_progress"}
    assert len(refs) == 1
    assert len(fake_emulator.charges) == 1
