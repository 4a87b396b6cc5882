"""``paygate demo --store``: the demo on each kind of store, PostgreSQL included (a
throwaway embedded server, or a server's URL in a schema dropped afterwards)."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from paygate import _embedded_pg
from paygate.cli import app
from paygate.cli._demo import run_demo


def _demo(store: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_demo(Console(file=out, width=200), providers=["payjp"], store=store)
    return code, out.getvalue()


def _our_servers() -> list[Path]:
    return [
        d
        for d in Path(tempfile.gettempdir()).glob(f"{_embedded_pg.PREFIX}*")
        if _embedded_pg._read_pid(d / "owner.pid") == os.getpid()
    ]


def test_memory_store() -> None:
    code, text = _demo("memory")
    assert code == 0, text
    assert "memory store" in text


@pytest.mark.postgres
def test_postgresql_starts_an_embedded_server_and_removes_it() -> None:
    try:
        _embedded_pg._installed_home()
    except _embedded_pg.EmbeddedPostgresUnavailable as exc:
        if os.environ.get("PAYGATE_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    before = _our_servers()
    code, text = _demo("postgresql")
    assert code == 0, text
    assert "postgresql store (embedded PostgreSQL" in text
    assert "steps passed" in text
    assert _our_servers() == before


@pytest.mark.postgres
def test_a_postgresql_url_gets_a_schema_dropped_afterwards(postgres_server_url: str) -> None:
    import psycopg

    code, text = _demo(postgres_server_url)
    assert code == 0, text
    match = re.search(r"schema (paygate_demo_[0-9a-f]+), temporary", text)
    assert match, text
    with psycopg.connect(postgres_server_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (match[1],)
        ).fetchone()
    assert found == (0,)


def test_an_unknown_store_is_refused() -> None:
    result = CliRunner().invoke(app, ["demo", "--store", "mongodb"])
    assert result.exit_code == 2
    assert "--store" in result.output
    assert "postgresql" in result.output
