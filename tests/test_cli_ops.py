"""The ops commands behave: `config check` validates the store URL (and with --connect
reaches the store), `reconcile` shows a progress bar only on a terminal and never in
--json, and every table fits 80 columns without cutting anything off."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from paygate.cli import _output, main
from paygate.cli._matrix import capability_rows


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["paygate", *args])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return 0 if code is None else int(code) if isinstance(code, int) else 1


class Consoles:
    """Every console the commands make: 80 columns wide, output kept."""

    def __init__(self, *, terminal: bool = False) -> None:
        self.terminal = terminal
        self.made: dict[bool, list[tuple[Console, io.StringIO]]] = {False: [], True: []}

    def __call__(self, *, stderr: bool = False) -> Console:
        buffer = io.StringIO()
        console = Console(file=buffer, width=80, force_terminal=self.terminal, color_system=None)
        self.made[stderr].append((console, buffer))
        return console

    def text(self, *, stderr: bool = False) -> str:
        return "".join(buffer.getvalue() for _, buffer in self.made[stderr])


@pytest.fixture
def consoles(monkeypatch: pytest.MonkeyPatch) -> Consoles:
    made = Consoles()
    monkeypatch.setattr(_output, "console", made)
    return made


def assert_fits(text: str) -> None:
    assert text.strip()
    widths = [cell_len(line.rstrip()) for line in text.splitlines()]
    assert max(widths) <= 80, text
    assert "…" not in text, text


# -- config check --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "memory://shared",
        "sqlite:///paygate.db",
        "sqlite:////var/lib/paygate/p.db",
        "sqlite:///p.db?busy_timeout=5000&synchronous=FULL",
        "postgresql://app:secret@db.internal:5432/paygate",
        "postgres://localhost/paygate?sslmode=require",
        "postgresql:///paygate",
    ],
)
def test_store_urls_that_are_well_formed(url: str) -> None:
    assert _output.store_problem(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "a store URL is required"),
        ("paygate.db", "not a URL"),
        ("redis://localhost", "unsupported store URL scheme 'redis'"),
        ("sqlite:paygate.db", "sqlite:///relative.db"),
        ("sqlite://paygate.db", "sqlite:///relative.db"),
        ("sqlite:///", "sqlite:///relative.db"),
        ("sqlite:///p.db?journal=wal", "unknown SQLite store option(s): journal"),
        ("sqlite:///p.db?busy_timeout=soon", "busy_timeout"),
        ("postgresql://db:port/paygate", "port"),
    ],
)
def test_store_urls_that_are_not(url: str, words: str) -> None:
    problem = _output.store_problem(url)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///p.db",
        "sqlite:///p.db?busy_timeout=10",
        "sqlite:p.db",
        "sqlite://host/p.db",
        "sqlite:///p.db?journal=wal",
        "memory://",
        "mysql://localhost/db",
    ],
)
def test_the_check_agrees_with_open_store(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paygate._errors import ConfigurationError
    from paygate._stores import open_store

    monkeypatch.chdir(tmp_path)
    try:
        open_store(url).close()
        opens = True
    except ConfigurationError:
        opens = False
    assert (_output.store_problem(url) is None) == opens


def test_store_label_hides_the_password() -> None:
    label = _output.store_label("postgresql://app:s3cret@db.internal:5432/paygate?sslmode=x")
    assert label == "postgresql://db.internal:5432/paygate"


def _config(tmp_path: Path, store: str) -> str:
    path = tmp_path / "paygate.toml"
    path.write_text(f'store = "{store}"\n[accounts]\n', encoding="utf-8")
    return str(path)


def test_config_check_refuses_a_bad_store_scheme(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consoles: Consoles
) -> None:
    assert _run(monkeypatch, "config", "check", _config(tmp_path, "redis://cache:6379")) == 1
    out = consoles.text()
    assert out.splitlines() == [
        "invalid: store: unsupported store URL scheme 'redis'; use memory://, "
        "sqlite:///path or postgresql://..."
    ]


def test_config_check_connects_to_a_sqlite_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consoles: Consoles
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert _run(monkeypatch, "config", "check", _config(tmp_path, url), "--connect") == 0
    assert consoles.text().splitlines() == [f"ok: store {url}", f"ok: store {url} opened and read"]


def test_config_check_without_connect_opens_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consoles: Consoles
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert _run(monkeypatch, "config", "check", _config(tmp_path, url)) == 0
    assert not (tmp_path / "p.db").exists()


def test_config_check_reports_an_unreachable_store_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    consoles: Consoles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'a-file' / 'p.db'}"
    assert _run(monkeypatch, "config", "check", _config(tmp_path, url), "--connect") == 1
    lines = consoles.text().splitlines()
    assert lines[0] == f"ok: store {url}"
    assert lines[1].startswith(f"unreachable: store {url}: ")
    assert len(lines) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_connect_problem_names_no_password() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    problem = _output.connect_problem(
        "postgresql://app:hunter2-very-secret@127.0.0.1:1/paygate?connect_timeout=2"
    )
    if problem is None:  # pragma: no cover - something answered on port 1
        pytest.skip("a server answered on 127.0.0.1:1")
    assert "hunter2-very-secret" not in problem
    assert "\n" not in problem


# -- reconcile: progress and tables ----------------------------------------------------


def _unknown_keys(tmp_path: Path, count: int) -> str:
    from paygate._stores import open_store

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    for n in range(count):
        key = f"gone\x1fcharge\x1forder-{n:04d}-a-rather-long-idempotency-key-{'x' * 20}"
        store.begin(
            key,
            account="gone",
            operation="charge",
            fingerprint="f",
            owner="w",
            lease=timedelta(seconds=1),
            now=datetime(2020, 1, 1, tzinfo=UTC),
        )
        store.mark_unknown(key, "w", "{}")
    store.close()
    return _config(tmp_path, url)


def test_reconcile_shows_progress_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    consoles = Consoles(terminal=True)
    monkeypatch.setattr(_output, "console", consoles)
    config = _unknown_keys(tmp_path, 40)
    assert _run(monkeypatch, "reconcile", "-c", config, "--dry-run") == 0
    progress = consoles.text(stderr=True)
    assert "reconcile" in progress
    assert "40/40" in progress
    table = consoles.text()
    assert sum(line.startswith("gone ") for line in table.splitlines()) == 40
    assert_fits(table)


def test_reconcile_shows_no_progress_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consoles: Consoles
) -> None:
    config = _unknown_keys(tmp_path, 5)
    assert _run(monkeypatch, "reconcile", "-c", config, "--dry-run") == 0
    assert consoles.text(stderr=True) == ""
    assert_fits(consoles.text())


def test_reconcile_json_never_shows_progress(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    consoles = Consoles(terminal=True)
    monkeypatch.setattr(_output, "console", consoles)
    config = _unknown_keys(tmp_path, 5)
    assert _run(monkeypatch, "reconcile", "-c", config, "--dry-run", "--json") == 0
    assert consoles.text(stderr=True) == ""
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5


def test_progress_counts_what_reconcile_reads(tmp_path: Path) -> None:
    from paygate import Gateway
    from paygate._reconcile import reconcile

    config = _unknown_keys(tmp_path, 3)
    seen: list[int] = []
    with Gateway.from_config(config) as gw:
        store = gw.store
        rows = _output.with_progress(
            gw, lambda: (seen.append(len(store.records())), reconcile(gw))[1], show=True
        )
        assert gw.store is store  # put back
    assert len(rows) == 3 == seen[0]


def test_providers_table_fits_80_columns(
    monkeypatch: pytest.MonkeyPatch, consoles: Consoles
) -> None:
    assert _run(monkeypatch, "providers") == 0
    text = consoles.text()
    assert_fits(text)
    words = set(text.split())
    for row in capability_rows():
        for cell in row:
            assert set(cell.split()) <= words, (cell, text)


def test_any_table_fits_80_columns() -> None:
    long_id = "ch_" + "9f" * 30
    action = (
        "univapay has no lookup: retry with the same key within 24 hours "
        "(its key window is not stated: check its dashboard first)"
    )
    rows = [("konbini-main-account", "unknown outcome", long_id, "unknown", "unknown", action)]
    buffer = io.StringIO()
    Console(file=buffer, width=80, color_system=None).print(
        _output.table(
            "paygate reconcile", ("account", "kind", "reference", "before", "after", "action"), rows
        )
    )
    text = buffer.getvalue()
    assert_fits(text)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("account"))
    start, end = header.index("reference"), header.index("before")
    body = lines[lines.index(header) + 2 :]
    assert "".join(line[start:end].strip() for line in body) == long_id  # folded, not cut
    words = set(text.split())
    assert set(action.split()) <= words
