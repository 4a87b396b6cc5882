"""The Japanese documentation (docs/ja/) is true: every code sample runs against the
sandbox (in order, as a reader would run them), or is listed with the reason it is not,
and every link between the pages resolves."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from _doc_fences import samples

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "ja"
FILES = sorted(DOCS.rglob("*.md"))


SAMPLES = samples(FILES, ROOT, ("python", "toml", "sh", "console"))
QUICKSTART = "docs/ja/quickstart.md"

# The quickstart's samples, run in this order in one namespace by test_quickstart_runs.
QUICKSTART_RUN = [(QUICKSTART, "toml", 0)] + [(QUICKSTART, "python", i) for i in range(14)]
# Shell lines checked by test_shell_lines.
SHELL = [
    (QUICKSTART, "sh", 0),
    (QUICKSTART, "console", 0),
    (QUICKSTART, "console", 1),
    (QUICKSTART, "console", 2),
]
# Each provider page's TOML sample: loaded by test_provider_page_config_loads.
PROVIDER_TOML = [
    (f"docs/ja/providers/{name}.md", "toml", 0)
    for name in ("elepay", "payjp", "pokepay", "smaregi", "univapay")
]
SKIPPED: dict[tuple[str, str, int], str] = {}


def test_every_sample_is_run_or_skipped_with_a_reason() -> None:
    handled = set(QUICKSTART_RUN) | set(SHELL) | set(PROVIDER_TOML) | set(SKIPPED)
    assert set(SAMPLES) == handled, sorted(set(SAMPLES) ^ handled)


def test_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
    for path in FILES:
        for target, _anchor in link.findall(path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (path.parent / target).exists(), (path.name, target)


def test_every_provider_has_a_page() -> None:
    english = {p.name for p in (ROOT / "docs" / "providers").glob("*.md")}
    japanese = {p.name for p in (DOCS / "providers").glob("*.md")}
    assert english == japanese


def test_each_provider_page_names_its_settings_keys() -> None:
    """Every settings key of an adapter is on its Japanese page."""
    from paygate._registry import provider_class

    for page in sorted((DOCS / "providers").glob("*.md")):
        cls = provider_class(page.stem, key="provider")
        text = page.read_text(encoding="utf-8")
        missing = [name for name in cls.settings_model.model_fields if f"`{name}`" not in text]
        assert not missing, (page.name, missing)


@pytest.mark.parametrize("sample", PROVIDER_TOML, ids=lambda s: s[0].rsplit("/", 1)[1])
def test_provider_page_config_loads(
    sample: tuple[str, str, int], monkeypatch: pytest.MonkeyPatch, sandbox: Any
) -> None:
    """The page's TOML loads, each ``${VAR}`` set to the sandbox's value of its key."""
    from paygate._config import load_config

    toml = SAMPLES[sample]
    table = next(iter(tomllib.loads(toml)["accounts"].values()))
    settings = sandbox.account_settings(table["provider"])
    for key, value in table.items():
        variable = re.fullmatch(r"\$\{([A-Z_]+)\}", str(value))
        if variable:
            monkeypatch.setenv(variable.group(1), str(settings[key]))
    config = load_config({"store": "memory://", **tomllib.loads(toml)})
    assert len(config.accounts) == 1


def test_readme_japanese_section_lists_every_operation() -> None:
    from paygate import AsyncGateway, Gateway

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## 日本語", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z_.]+)`", row.split("|")[1])}
    public = {
        name
        for cls in (Gateway, AsyncGateway)
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }
    not_operations = {"from_config", "provider", "extension", "close", "aclose"}
    expected = (public - not_operations) | {
        "webhooks.handle",
        "webhooks.on",
        "webhooks.asgi",
        "reconcile",
    }
    assert expected <= listed, sorted(expected - listed)
    assert all(row.count("|") >= 3 and row.split("|")[2].strip() for row in rows)


# -- the quickstart, end to end on the sandbox -------------------------------------------


def _configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    """Write the quickstart's paygate.toml to ./ and point its accounts at the sandbox
    through the environment (variables override the file)."""
    toml = SAMPLES[(QUICKSTART, "toml", 0)]
    for name in set(re.findall(r"\$\{([A-Z_]+)\}", toml)):
        monkeypatch.setenv(name, "from-the-environment")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paygate.toml").write_text(toml, encoding="utf-8")
    for account, table in tomllib.loads(toml)["accounts"].items():
        for key, value in sandbox.account_settings(table["provider"]).items():
            if key != "provider":
                monkeypatch.setenv(
                    f"PAYGATE_ACCOUNTS__{account.upper()}__{key.upper()}", str(value)
                )


def _run(source: str, namespace: dict[str, Any]) -> None:
    exec(compile(source, "<sample>", "exec"), namespace)


def _payjp_event(sandbox: Any, charge_ref: str) -> bytes:
    import httpx

    settings = sandbox.account_settings("payjp")
    answer = httpx.get(
        f"{settings['base_url']}/v1/charges/{charge_ref}",
        auth=(settings["secret_key"], ""),
        timeout=10,
    )
    answer.raise_for_status()
    event = {
        "id": "evnt_quickstart_0001",
        "object": "event",
        "type": "charge.succeeded",
        "created": 1_700_000_000,
        "livemode": False,
        "data": answer.json(),
    }
    return json.dumps(event).encode()


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    from paygate import ChargeStatus
    from paygate._config import load_config

    _configure(tmp_path, monkeypatch, sandbox)
    config = load_config("paygate.toml")
    assert set(config.accounts) == {"card", "konbini", "qr", "pokepay", "pos"}
    assert set(config.accounts["pokepay"].methods) >= {"wallet", "qr"}

    funded = "e78337d7-5aae-5629-b261-b8f63de20cb7"  # the sandbox's funded Pokepay customer
    ns: dict[str, Any] = {"card_token": "tok_success", "customer_id": funded}
    code = [SAMPLES[key] for key in QUICKSTART_RUN[1:]]
    try:
        _run(code[0], ns)  # the gateway
        _run(code[1], ns)  # card: charge, partial refund, authorise and capture
        assert ns["captured"].status is ChargeStatus.SUCCEEDED
        _run(code[2], ns)  # konbini slip
        assert ns["slip"].payment_number
        _run(code[3], ns)  # konbini cancel
        _run(code[4], ns)  # elepay code
        code_id = ns["qr_charge"].provider_ref.partition(":")[2]
        sandbox.control("elepay", "pay_code", code_id=code_id, payment_method="paypay")
        _run(code[5], ns)  # paid, refund part
        _run(code[6], ns)  # Pokepay Cashtray
        sandbox.control("pokepay", "scan_cashtray", token=ns["tray"].next_action.url)
        assert ns["gw"].status("pokepay", ns["tray"].id).status is ChargeStatus.SUCCEEDED
        _run(code[7], ns)  # Pokepay wallet, refunded
        _run(code[8], ns)  # Smaregi sale, voided
        _run(code[9], ns)  # the other operations
        assert ns["rows"] == [] or all(row.action for row in ns["rows"])
        _run(code[10], ns)  # the handler
        _run(code[11], ns)  # the ASGI app
        assert ns["app"] is not None
        _run(code[12], ns)  # handle() in another framework
        token = sandbox.account_settings("payjp")["webhook_token"]
        body = _payjp_event(sandbox, ns["auth"].provider_ref)  # captured, not refunded
        assert ns["payjp_webhook"]({"X-Payjp-Webhook-Token": "wrong"}, body) == 401
        assert ns["paid_orders"] == []
        assert ns["payjp_webhook"]({"X-Payjp-Webhook-Token": token}, body) == 200
        assert ns["payjp_webhook"]({"X-Payjp-Webhook-Token": token}, body) == 200
        assert ns["paid_orders"] == [ns["auth"].id]  # once, however often delivered
    finally:
        if "gw" in ns:
            ns["gw"].close()


def test_quickstart_cassette_sample(sandbox: Any) -> None:
    from paygate.testing._cassette_env import CassetteEnv

    ns: dict[str, Any] = {}
    _run(SAMPLES[(QUICKSTART, "python", 13)], ns)
    env = CassetteEnv(mode="rewrite", sandbox=sandbox)
    try:
        ns["test_konbini_order"](env)
    finally:
        env.close()


# -- shell lines ---------------------------------------------------------------------------


def _lines(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        command = line.removeprefix("$ ").split("  #")[0].strip()
        if command and (line.startswith("$ ") or not block.lstrip().startswith("$ ")):
            out.append(command)
    return out


def test_install_lines_name_real_extras() -> None:
    import shlex

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    lines = _lines(SAMPLES[(QUICKSTART, "sh", 0)])
    assert lines
    for line in lines:
        words = shlex.split(line)
        assert words[:2] == ["pip", "install"], line
        for requirement in words[2:]:
            name, _, rest = requirement.partition("[")
            assert name == "paygate-jp", requirement
            assert set(rest.rstrip("]").split(",")) <= set(extras), requirement


def test_cli_lines_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    import shlex

    from paygate.cli import main

    _configure(tmp_path, monkeypatch, sandbox)
    commands = [
        line for key in SHELL[1:] for line in _lines(SAMPLES[key]) if line.startswith("paygate ")
    ]
    assert len(commands) == 3
    for command in commands:
        monkeypatch.setattr(sys, "argv", shlex.split(command))
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code in (0, None), command
    pytest_lines = [line for line in _lines(SAMPLES[SHELL[3]]) if line.startswith("pytest")]
    assert pytest_lines == ["pytest --record-mode=rewrite", "pytest --block-network"]
