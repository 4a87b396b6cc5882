"""The command line fails cleanly: one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from paygate.cli import main


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["paygate", *args])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return 0 if code is None else int(code) if isinstance(code, int) else 1


def test_missing_config_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _run(monkeypatch, "reconcile", "-c", str(tmp_path / "nope.toml")) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "paygate: ConfigurationError: config: config file not found: nope.toml"
    ]
    assert "Traceback" not in err


def test_demo_refuses_an_unknown_provider(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, "demo", "-p", "nosuch") == 1
    err = capsys.readouterr().err
    assert "no provider 'nosuch'" in err
    assert "Traceback" not in err


def test_reconcile_dry_run_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from paygate._stores import open_store

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    store.begin(
        "gone\x1fcharge\x1fk1",
        account="gone",
        operation="charge",
        fingerprint="f",
        owner="w",
        lease=timedelta(seconds=1),
        now=datetime(2020, 1, 1, tzinfo=UTC),
    )
    store.mark_unknown("gone\x1fcharge\x1fk1", "w", "{}")
    store.close()
    config = tmp_path / "paygate.toml"
    config.write_text(f'store = "{url}"\n[accounts]\n', encoding="utf-8")
    assert _run(monkeypatch, "reconcile", "-c", str(config), "--dry-run", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {
            "account": "gone",
            "kind": "unknown outcome",
            "reference": "k1",
            "before": "unknown",
            "after": "unknown",
            "action": "account not configured",
        }
    ]
