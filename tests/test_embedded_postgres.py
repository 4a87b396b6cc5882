"""The embedded PostgreSQL server: it starts, serves the store, and leaves nothing behind
(after `stop`, on SIGTERM, after a kill of the process that started it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paygate import _embedded_pg
from paygate.testing import (
    EmbeddedPostgresUnavailable,
    embedded_postgres,
    start_embedded_postgres,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _binaries() -> None:
    try:
        _embedded_pg._installed_home()
    except EmbeddedPostgresUnavailable as exc:
        if os.environ.get("PAYGATE_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def parent() -> Iterator[Path]:
    """A folder of this test's own for the servers' folders (in the temporary directory,
    which the server's user can reach; pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="paygate-pg-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _owner_uid(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


def test_starts_serves_the_store_and_stop_removes_everything(parent: Path) -> None:
    import psycopg

    from paygate._stores import open_store

    started = time.perf_counter()
    with embedded_postgres(directory=parent) as server:
        took = time.perf_counter() - started
        assert server.running
        assert server.directory.parent == parent
        assert server.directory.name.startswith(_embedded_pg.PREFIX)
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith(server.version)
        store = open_store(f"{server.url}?schema=shop")
        try:
            store.cache_put("k", {"v": 1})
            assert store.cache_get("k") == {"v": 1}
        finally:
            store.close()
        if os.geteuid() == 0 and Path("/proc").is_dir():
            # PostgreSQL refuses root: the server runs as an unprivileged user.
            assert _owner_uid(server.pid) != 0
        pid = server.pid
    assert not server.running
    assert not server.directory.exists()
    assert list(parent.iterdir()) == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url, connect_timeout=2)
    server.stop()  # again: nothing to do
    assert not _embedded_pg._alive(pid)
    assert took < 30


def test_the_exit_handlers_of_a_forked_child_leave_the_server_alone(
    parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with embedded_postgres(directory=parent) as server:
        with monkeypatch.context() as child:
            child.setattr(os, "getpid", lambda: server.pid)  # any process but the owner
            _embedded_pg.stop_all()
        assert server.running
        assert server.directory.exists()
    assert not server.running


_SERVE = """
import json, sys, time
from paygate._embedded_pg import start_embedded_postgres
server = start_embedded_postgres(directory=sys.argv[1])
print(json.dumps({"directory": str(server.directory), "pid": server.pid}), flush=True)
time.sleep(120)
"""


def _serve_in_a_child(parent: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait(timeout=30)
        pytest.fail(f"the child did not start a server (exit code {child.returncode})")
    return child, json.loads(line)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while _embedded_pg._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _embedded_pg._alive(pid)


def test_sigterm_stops_the_server_and_removes_its_folder(parent: Path) -> None:
    child, info = _serve_in_a_child(parent)
    assert Path(info["directory"]).is_dir()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    child.stdout.close()  # type: ignore[union-attr]
    _wait_gone(info["pid"])
    assert not Path(info["directory"]).exists()


def test_a_signal_while_the_server_starts_undoes_the_start(
    parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    ready = _embedded_pg._ready

    def signalled(process: subprocess.Popen[bytes], data: Path, deadline: float) -> bool:
        assert ready(process, data, deadline)
        seen["pid"] = process.pid
        _embedded_pg.stop_all()  # what the SIGTERM handler does first
        seen["left"] = data.parent.exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(_embedded_pg, "_ready", signalled)
    with pytest.raises(KeyboardInterrupt):
        start_embedded_postgres(directory=parent)
    assert seen["left"] is False
    _wait_gone(seen["pid"])
    assert list(parent.iterdir()) == []
    assert not _embedded_pg._STARTING


def test_the_next_start_removes_what_a_killed_process_left(parent: Path) -> None:
    child, info = _serve_in_a_child(parent)
    child.kill()
    child.wait(timeout=30)
    child.stdout.close()  # type: ignore[union-attr]
    # Killed outright: no handler ran, the server and its folder are still there.
    assert Path(info["directory"]).is_dir()
    assert _embedded_pg._alive(info["pid"])
    # A folder that is being created (empty: no owner yet) and a live one are left alone;
    # one whose removal was cut short (no owner, something else) goes.
    young = parent / f"{_embedded_pg.PREFIX}young"
    young.mkdir()
    cut_short = parent / f"{_embedded_pg.PREFIX}cut"
    (cut_short / "data" / "base").mkdir(parents=True)
    with embedded_postgres(directory=parent) as server:
        if Path("/proc").is_dir():
            _wait_gone(info["pid"])
        assert not Path(info["directory"]).exists()
        assert young.is_dir()
        assert not cut_short.exists()
        assert _embedded_pg.remove_leftovers(parent) == []
        assert server.directory.is_dir()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="only root runs the server as another user",
)
def test_as_root_binaries_out_of_reach_are_copied_first(
    parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation under a folder only root may enter (a home folder) still works."""
    private = parent / "private"
    private.mkdir(mode=0o700)
    installed = _embedded_pg._installed_home()
    package = installed.parent
    home = private / package.name / installed.name
    shutil.copytree(installed, home, ignore=shutil.ignore_patterns("include"))
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, private / libs.name)
    monkeypatch.setattr(_embedded_pg, "_installed_home", lambda: home)
    server = start_embedded_postgres(directory=parent)
    try:
        assert (server.directory / "install" / package.name / "pginstall").is_dir()
        assert _owner_uid(server.pid) != 0
    finally:
        server.stop()
    assert not server.directory.exists()


def test_without_the_package_it_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EmbeddedPostgresUnavailable, match=r"paygate-jp\[postgres-embedded\]"):
        start_embedded_postgres()
