"""``paygate charges list`` / ``show``: the local ledger from the shell, as text and JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from paygate import Card, Gateway, Money, RetryPolicy
from paygate.cli import main


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["paygate", *args])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return 0 if code is None else int(code) if isinstance(code, int) else 1


@pytest.fixture
def config(sandbox: Any, tmp_path: Path) -> Path:
    """A config on the sandbox's PAY.JP with a SQLite store holding three charges."""
    table = sandbox.account_settings("payjp")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Gateway.from_config(
        {"store": store, "accounts": {"card": table}}, retry=RetryPolicy.no_wait()
    ) as gw:
        for i in range(3):
            charge = gw.charge(
                "card",
                amount=Money.jpy(1000 + i),
                method=Card(token="tok_success"),
                idempotency_key=f"ledger-{i}",
            )
        gw.refund("card", charge.id, amount=Money.jpy(300), idempotency_key="ledger-r")
    lines = [f'store = "{store}"', "[accounts.card]"]
    lines += [f"{k} = {json.dumps(str(v))}" for k, v in table.items()]
    path = tmp_path / "paygate.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_list_as_json_pages(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, "charges", "list", "-c", str(config), "--json", "--limit", "2") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    charges, cursor = lines[:-1], lines[-1]["next"]
    assert [c["amount"]["amount"] for c in charges] == [1002, 1001]
    assert all("raw" not in c for c in charges)
    args = ("charges", "list", "-c", str(config), "--json", "--after", cursor)
    assert _run(monkeypatch, *args) == 0
    (last,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert last["amount"]["amount"] == 1000


def test_list_filters_and_prints_a_table(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("charges", "list", "-c", str(config), "--status", "partially_refunded")
    assert _run(monkeypatch, *args) == 0
    out = capsys.readouterr().out
    assert "1,002 JPY" in out  # the refunded one (its status folds in 80 columns)
    assert "300 JPY" in out
    assert "1,000 JPY" not in out
    assert "1,001 JPY" not in out


def test_show_gives_history_and_refunds(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(monkeypatch, "charges", "list", "-c", str(config), "--json", "--limit", "1")
    newest = json.loads(capsys.readouterr().out.splitlines()[0])["id"]
    assert _run(monkeypatch, "charges", "show", newest, "-c", str(config), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["charge"]["id"] == newest
    assert [t["to_status"] for t in shown["history"]][-1] == "partially_refunded"
    assert [r["amount"]["amount"] for r in shown["refunds"]] == [300]


def test_show_of_an_unknown_charge_is_one_line(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, "charges", "show", "ch_nope", "-c", str(config)) == 1
    err = capsys.readouterr().err
    assert err.strip() == "paygate: InvalidRequest: unknown charge 'ch_nope'"
