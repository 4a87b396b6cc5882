"""Conformance: concurrent callers and crashed owners.

Threads share stores in-process; processes (multiprocessing, spawn) share the SQLite
file or the PostgreSQL database. Exactly one caller may start a key, whatever the race.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from paygate import ChargeStatus
from paygate._stores import BeginOutcome, ChargeUpdate, ClaimOutcome, Store, new_owner
from paygate._stores._common import owner_dead

from .conftest import T0, StoreKit

HERE = Path(__file__).parent
LEASE = timedelta(minutes=5)


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The worker module, importable by name in spawned children."""
    monkeypatch.syspath_prepend(str(HERE))
    import _store_workers

    return _store_workers


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def spawn() -> Any:
    return multiprocessing.get_context("spawn")


# ----------------------------------------------------------------------- threads


@pytest.mark.parametrize("complete", [False, True], ids=["held", "completed"])
def test_threads_racing_one_key_start_it_once(kit: StoreKit, complete: bool) -> None:
    stores = [kit.open() for _ in range(3)]
    n = 16
    barrier = threading.Barrier(n)
    outcomes: list[BeginOutcome | None] = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        store = stores[i % len(stores)]
        owner = f"{new_owner()}-{i}"
        try:
            barrier.wait()
            began = store.begin(
                "key",
                account="acct",
                operation="charge",
                fingerprint="fp",
                owner=owner,
                lease=LEASE,
                now=T0,
            )
            outcomes[i] = began.outcome
            if began.outcome is BeginOutcome.STARTED and complete:
                store.complete("key", owner, {"by": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert outcomes.count(BeginOutcome.STARTED) == 1
    others = {o for o in outcomes if o is not BeginOutcome.STARTED}
    allowed = (
        {BeginOutcome.IN_PROGRESS, BeginOutcome.REPLAY} if complete else {BeginOutcome.IN_PROGRESS}
    )
    assert others <= allowed


def test_threads_sharing_one_owner_still_start_once(kit: StoreKit) -> None:
    # A gateway uses one owner id for all its threads.
    store = kit.open()
    owner = new_owner()
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[BeginOutcome] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        began = store.begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner=owner,
            lease=LEASE,
            now=T0,
        )
        with lock:
            outcomes.append(began.outcome)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(BeginOutcome.STARTED) == 1
    assert outcomes.count(BeginOutcome.IN_PROGRESS) == n - 1


def test_threads_taking_over_an_expired_key_take_it_once(kit: StoreKit) -> None:
    stores = [kit.open() for _ in range(2)]
    stores[0].begin(
        "key",
        account="a",
        operation="charge",
        fingerprint="fp",
        owner="gone:1:x",
        lease=LEASE,
        now=T0,
    )
    n = 12
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        results[i] = stores[i % 2].begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner=f"h:1:{i}",
            lease=LEASE,
            now=T0 + LEASE,
        )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r in results if r.outcome is BeginOutcome.STARTED]
    assert len(started) == 1
    assert started[0].recovering is True
    assert started[0].record.attempts == 2
    assert all(r.outcome is BeginOutcome.IN_PROGRESS for r in results if r not in started)
    final = stores[0].get("key")
    assert final is not None
    assert final.owner == started[0].record.owner
    assert final.attempts == 2


# --------------------------------------------------------------------- processes


def test_processes_racing_one_key_start_it_once(shared_kit: StoreKit, workers: Any) -> None:
    shared_kit.open()  # create the schema up front, as an application would
    ctx = spawn()
    n = 4
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=workers.begin_once, args=(shared_kit.url, "key", barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=90) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    outcomes = [o for o, _ in got]
    assert "error" not in outcomes, got
    assert outcomes.count("started") == 1
    assert set(outcomes) - {"started"} <= {"in_progress", "replay"}
    winner = next(owner for o, owner in got if o == "started")
    rec = shared_kit.open().get("key")
    assert rec is not None
    assert rec.state == "completed"
    assert rec.result == {"charge": "ch_1", "by": winner}


def test_processes_opening_a_new_store_together(tmp_path: Path, workers: Any) -> None:
    # Schema creation itself must not race: nobody opened this file before.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = spawn()
    n = 3
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=workers.begin_once, args=(url, "key", barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=90) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert [o for o, _ in got].count("started") == 1, got


def test_processes_updating_one_charge_are_serialised(shared_kit: StoreKit, workers: Any) -> None:
    shared_kit.open()
    S = ChargeStatus
    steps = [
        (S.PENDING, 0, 0),
        (S.REQUIRES_ACTION, 0, 1),
        (S.SUCCEEDED, 0, 2),
        (S.PARTIALLY_REFUNDED, 100, 3),
        (S.PARTIALLY_REFUNDED, 400, 4),
    ]
    updates = [
        ChargeUpdate(
            charge_id="ch_p",
            account="acct",
            provider="fakepay",
            provider_ref="pr",
            method="card",
            status=status,
            amount=1000,
            currency="JPY",
            amount_refunded=refunded,
            observed_at=T0 + timedelta(seconds=second),
            source="poll",
        )
        for status, refunded, second in steps
    ]
    ctx = spawn()
    n = 3
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=workers.record_many,
            args=(shared_kit.url, "ch_p", updates[i % 2 :] + updates[::-1], barrier, results),
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=90) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert got == ["ok"] * n
    store = shared_kit.open()
    final = store.get_charge("ch_p")
    assert final is not None
    assert (final.status, final.amount_refunded) == (S.PARTIALLY_REFUNDED, 400)
    history = store.history("ch_p")
    pairs = [(t.to_status, t.amount_refunded) for t in history]
    assert pairs == [(s, r) for s, r, _ in steps][-len(pairs) :]
    assert history[0].from_status is None


# ------------------------------------------------------------------ crash recovery


def _crash_a_worker(kit: StoreKit, workers: Any) -> str:
    """A child process begins a key and claims an event, then is killed."""
    ctx = spawn()
    ready = ctx.Queue()
    never = ctx.Queue()
    proc = ctx.Process(target=workers.begin_and_hang, args=(kit.url, "key", ready, never))
    proc.start()
    try:
        owner, claimed = ready.get(timeout=90)
        assert claimed == "new"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=60)  # reaped: the pid no longer exists
    assert proc.exitcode == -signal.SIGKILL
    return str(owner)


def test_sqlite_recovers_at_once_from_a_killed_owner(tmp_path: Path, workers: Any) -> None:
    from .conftest import make_kit

    kit, _ = make_kit("sqlite", tmp_path)
    try:
        store = kit.open()
        dead = _crash_a_worker(kit, workers)
        assert owner_dead(dead)
        # The lease is still live, but its owner is gone: take over now.
        took = store.begin(
            "key",
            account="acct",
            operation="charge",
            fingerprint="fp",
            owner=new_owner(),
            lease=LEASE,
            now=T0,
        )
        assert took.outcome is BeginOutcome.STARTED
        assert took.recovering is True
        assert took.record.attempts == 2
        assert store.claim_event("acct", "evt_1", owner=new_owner(), lease=LEASE, now=T0) is (
            ClaimOutcome.NEW
        )
    finally:
        kit.close()


@pytest.mark.postgres
def test_postgres_recovers_from_a_killed_owner_when_its_lease_ends(
    tmp_path: Path, workers: Any, postgres_server_url: str
) -> None:
    from .conftest import make_kit

    kit, cleanup = make_kit("postgres", tmp_path, postgres_server_url)
    try:
        store = kit.open()
        _crash_a_worker(kit, workers)
        # Other machines cannot be probed: the lease decides.
        args: dict[str, Any] = dict(
            account="acct", operation="charge", fingerprint="fp", owner=new_owner(), lease=LEASE
        )
        assert store.begin("key", now=T0, **args).outcome is BeginOutcome.IN_PROGRESS
        took = store.begin("key", now=T0 + LEASE, **args)
        assert took.outcome is BeginOutcome.STARTED
        assert took.recovering is True
        claim = dict(owner=new_owner(), lease=LEASE)
        assert store.claim_event("acct", "evt_1", now=T0, **claim) is ClaimOutcome.BUSY
        assert store.claim_event("acct", "evt_1", now=T0 + LEASE, **claim) is ClaimOutcome.NEW
    finally:
        kit.close()
        cleanup()


def test_sqlite_takes_over_a_dead_local_owner(tmp_path: Path, dead_pid: int) -> None:
    from paygate._stores import SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    try:
        import socket

        dead = f"{socket.gethostname()}:{dead_pid}:abc"
        store.begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner=dead,
            lease=LEASE,
            now=T0,
        )
        store.claim_event("a", "e", owner=dead, lease=LEASE, now=T0)
        took = store.begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner="x:1:y",
            lease=LEASE,
            now=T0,
        )
        assert took.recovering is True
        assert store.claim_event("a", "e", owner="x:1:y", lease=LEASE, now=T0) is ClaimOutcome.NEW
    finally:
        store.close()


def test_sqlite_waits_for_a_live_local_owner(tmp_path: Path) -> None:
    from paygate._stores import SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    try:
        mine = new_owner()  # this very process: alive
        store.begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner=mine,
            lease=LEASE,
            now=T0,
        )
        again = store.begin(
            "key",
            account="a",
            operation="charge",
            fingerprint="fp",
            owner=new_owner(),
            lease=LEASE,
            now=T0,
        )
        assert again.outcome is BeginOutcome.IN_PROGRESS
    finally:
        store.close()


def test_memory_store_honours_the_lease_only(dead_pid: int) -> None:
    import socket

    from paygate._stores import MemoryStore

    store: Store = MemoryStore()
    dead = f"{socket.gethostname()}:{dead_pid}:abc"
    store.begin(
        "key",
        account="a",
        operation="charge",
        fingerprint="fp",
        owner=dead,
        lease=LEASE,
        now=T0,
    )
    again = store.begin(
        "key",
        account="a",
        operation="charge",
        fingerprint="fp",
        owner="x:1:y",
        lease=LEASE,
        now=T0,
    )
    assert again.outcome is BeginOutcome.IN_PROGRESS


# --------------------------------------------------------------------- owner ids


def test_new_owner_names_host_and_pid() -> None:
    import socket

    host, pid, token = new_owner().split(":")
    assert host == socket.gethostname()
    assert int(pid) == os.getpid()
    assert len(token) >= 8
    assert new_owner() != new_owner()


def test_owner_dead_only_for_a_gone_local_process(dead_pid: int) -> None:
    import socket

    host = socket.gethostname()
    assert owner_dead(f"{host}:{dead_pid}:x") is True
    assert owner_dead(f"{host}:{os.getpid()}:x") is False
    assert owner_dead(f"{host}:1:x") is False  # exists (or may not be signalled)
    assert owner_dead(f"another-{host}:{dead_pid}:x") is False
    # Never probe pid 0 or negative pids (process groups).
    assert owner_dead(f"{host}:0:x") is False
    assert owner_dead(f"{host}:-1:x") is False
    for junk in (None, "", "nonsense", f"{host}", f"{host}:abc:x", f"{host}::x"):
        assert owner_dead(junk) is False


# ------------------------------------------------------------- SQLite connections


def test_sqlite_connection_of_a_finished_thread_is_closed(tmp_path: Path) -> None:
    import gc

    from paygate._stores import SQLiteStore

    store = SQLiteStore(tmp_path / "t.db")
    try:
        opened = len(store._conns)

        def work() -> None:
            store.cache_put("k", 1)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        gc.collect()
        assert len(store._conns) == opened
        assert store.cache_get("k") == 1
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sqlite_store_keeps_working_in_a_forked_child(tmp_path: Path) -> None:
    from paygate._stores import SQLiteStore

    store = SQLiteStore(tmp_path / "f.db")
    try:
        store.cache_put("parent", 1)
        pid = os.fork()
        if pid == 0:  # child: must open its own connection, never the parent's
            code = 1
            try:
                store.cache_put("child", 2)
                code = 0 if store.cache_get("parent") == 1 else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.cache_get("child") == 2
        store.cache_put("parent-again", 3)
        assert store.cache_get("parent-again") == 3
    finally:
        store.close()
