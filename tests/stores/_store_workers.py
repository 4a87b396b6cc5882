"""Code run in child processes by the store concurrency tests.

Spawned children import this module by name, so the tests put its directory on
``sys.path`` first (children inherit the parent's path).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def begin_once(url: str, key: str, barrier: Any, results: Any) -> None:
    """Open the store, wait for the others, begin ``key`` once, report the outcome."""
    from paygate._stores import new_owner, open_store

    store = open_store(url)
    try:
        owner = new_owner()
        barrier.wait(timeout=60)
        began = store.begin(
            key,
            account="acct",
            operation="charge",
            fingerprint="fp",
            owner=owner,
            lease=LEASE,
            now=T0,
            charge_id="ch_1",
        )
        if began.outcome.value == "started":
            store.complete(key, owner, {"charge": "ch_1", "by": owner})
        results.put((began.outcome.value, owner))
    except BaseException as exc:
        results.put(("error", repr(exc)))
        raise
    finally:
        store.close()


def begin_and_hang(url: str, key: str, ready: Any, never: Any) -> None:
    """Begin ``key`` and then block until killed (a crash mid-operation)."""
    from paygate._stores import new_owner, open_store

    store = open_store(url)
    owner = new_owner()
    store.begin(
        key,
        account="acct",
        operation="charge",
        fingerprint="fp",
        owner=owner,
        lease=LEASE,
        now=T0,
    )
    claimed = store.claim_event("acct", "evt_1", owner=owner, lease=LEASE, now=T0)
    ready.put((owner, claimed.value))
    never.get()  # the parent kills this process instead of ever answering


def record_many(url: str, charge_id: str, updates: list[Any], barrier: Any, results: Any) -> None:
    """Apply ``updates`` to one charge after all workers are ready."""
    from paygate._stores import open_store

    store = open_store(url)
    try:
        barrier.wait(timeout=60)
        for update in updates:
            store.record_charge(update, now=T0)
        results.put("ok")
    except BaseException as exc:
        results.put(f"error: {exc!r}")
        raise
    finally:
        store.close()
