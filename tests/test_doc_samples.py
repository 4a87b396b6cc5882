"""Every code sample in README.md and docs/*.md runs (docs/providers/ aside: the provider
pages have their own checks). A sample that cannot run here is listed with the reason;
a new sample fails `test_every_sample_is_run_or_skipped_with_a_reason` until it is
handled here."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _doc_fences import samples

from paygate import Gateway, RetryPolicy
from paygate.testing import VirtualTime

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


SAMPLES = samples(FILES, ROOT, ("python", "toml"))

# Samples that are fragments or need what a test cannot have, with the reason.
SKIPPED = {
    ("docs/sandbox.md", "python", 0): "an outline: `charge` comes from the elided part (`...`)",
    ("docs/sandbox.md", "python", 4): "needs the reader's own webhook receiver (`receiver`)",
    **{
        ("docs/adapters.md", "python", i): "an outline of the reader's own adapter (AcmePay)"
        for i in range(6)
    },
}


def code(file: str, lang: str, index: int) -> str:
    return SAMPLES[(file, lang, index)]


def run(source: str, **namespace: Any) -> dict[str, Any]:
    exec(compile(source, "<sample>", "exec"), namespace)
    return namespace


def needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the sample needs {module}, which the dev environment does not install")


def virtual_gateways(monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> VirtualTime:
    """`Gateway.from_config` as the sample calls it, on the sandbox's virtual clock."""
    vt = VirtualTime(sandbox)
    original: Callable[..., Gateway] = Gateway.from_config.__func__  # type: ignore[attr-defined]

    def from_config(cls: type[Gateway], *args: Any, **kwargs: Any) -> Gateway:
        kwargs.setdefault("retry", RetryPolicy.no_wait())
        gw = original(cls, *args, sleep=vt.sleep, monotonic=vt.monotonic, **kwargs)
        return vt.attach(gw)

    monkeypatch.setattr(Gateway, "from_config", classmethod(from_config))
    return vt


def sandbox_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any, toml: str
) -> None:
    """Write ``toml`` as ./paygate.toml and point its accounts at the sandbox through the
    environment (as the README says: variables override the file)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paygate.toml").write_text(toml, encoding="utf-8")
    for name, table in tomllib.loads(toml).get("accounts", {}).items():
        for key, value in sandbox.account_settings(table["provider"]).items():
            if key != "provider":
                monkeypatch.setenv(f"PAYGATE_ACCOUNTS__{name.upper()}__{key.upper()}", str(value))


def test_every_sample_is_run_or_skipped_with_a_reason() -> None:
    handled = set(RUN) | set(SKIPPED)
    assert set(SAMPLES) == handled, sorted(set(SAMPLES) ^ handled)


# -- the samples ------------------------------------------------------------------------


def readme_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    toml = code("README.md", "toml", 0)
    for var in ("UNIVAPAY_SECRET", "UNIVAPAY_JWT", "PAYJP_SECRET_KEY"):
        monkeypatch.setenv(var, "from-the-environment")
    sandbox_config(tmp_path, monkeypatch, sandbox, toml)
    vt = virtual_gateways(monkeypatch, sandbox)
    ns = run(code("README.md", "python", 0))
    assert ns["charge"].next_action.payment_number
    assert vt.elapsed == 600
    ns["gw"].close()


def readme_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    from paygate._config import load_config

    monkeypatch.setenv("UNIVAPAY_SECRET", "from-the-environment-1234")
    monkeypatch.setenv("UNIVAPAY_JWT", "from-the-environment-1234")
    monkeypatch.setenv("PAYJP_SECRET_KEY", "sk_test_from_the_environment")
    # The placeholder store_id ("...") is overridden from the environment, as the README says.
    monkeypatch.setenv(
        "PAYGATE_ACCOUNTS__KONBINI__STORE_ID", "11111111-2222-4333-8444-555555555555"
    )
    monkeypatch.setenv("PAYGATE_STORE", "memory://")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paygate.toml").write_text(code("README.md", "toml", 0), encoding="utf-8")
    config = load_config("paygate.toml")
    assert config is not None


def doc_testing_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    ns = run(code("docs/testing.md", "python", 0))
    from paygate.testing._plugin import accounts_for

    with Gateway.from_config(
        {"store": "memory://", "accounts": accounts_for(sandbox)}, retry=RetryPolicy.no_wait()
    ) as gw:
        ns["test_checkout"](lambda: gw, sandbox)


def doc_testing_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    """Record the sample's cassette on the sandbox, then replay it as the page says: no
    server, every call answered from the cassette."""
    from vcr import VCR

    from paygate.testing import protect
    from paygate.testing._cassette_env import CassetteEnv

    test = run(code("docs/testing.md", "python", 1))["test_konbini_order"]
    for mode in ("all", "none"):
        env = (
            CassetteEnv(mode="rewrite", sandbox=sandbox)
            if mode == "all"
            else CassetteEnv(mode="none")
        )
        vcr = protect(VCR(cassette_library_dir=str(tmp_path), record_mode=mode))
        try:
            with vcr.use_cassette("test_konbini_order.yaml") as cassette:
                test(env)
        finally:
            env.close()
        if mode == "none":
            assert cassette.all_played
            assert cassette.play_count > 0


def architecture_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    from paygate.adapter import Call

    ns = run(code("docs/architecture.md", "python", 0), Call=Call)
    assert callable(ns["status"])


def architecture_kit_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    from paygate.testing._plugin import accounts_for

    ns = run(code("docs/architecture.md", "python", 1))
    ns["charge_on_both_drivers"](accounts_for(sandbox))
    assert len(sandbox.ledger()["payjp"]) >= 2


def architecture_kit_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    ns = run(code("docs/architecture.md", "python", 2))
    assert ns["script"].answers == []


def architecture_kit_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any
) -> None:
    ns = run(code("docs/architecture.md", "python", 3))
    assert ns["charge"].amount.amount == 1000
    assert len(ns["deliveries"]) == 1  # charge.succeeded, not sent anywhere


def sandbox_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    from paygate.sandbox import running

    ns = run(code("docs/sandbox.md", "python", 1), pytest=pytest, running=running)
    assert "sandbox" in ns
    assert "_fresh" in ns


def sandbox_client_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    needs("trustme")
    from paygate.sandbox import running

    ns = run(code("docs/sandbox.md", "python", 2), running=running)
    assert ns["table"]["ssl_cert_file"]


def sandbox_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    run(code("docs/sandbox.md", "python", 3), sandbox=sandbox)
    assert len(sandbox.faults()) == 3
    sandbox.clear_faults()


def webhooks_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    paid: list[str] = []
    with Gateway.from_config(
        {"store": "memory://", "accounts": {"card": sandbox.account_settings("payjp")}}
    ) as gw:
        run(code("docs/webhooks.md", "python", 0), gw=gw, mark_order_paid=paid.append)


def webhooks_fastapi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    needs("fastapi")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paygate.toml").write_text(sandbox.config_toml(store="memory://"))
    run(code("docs/webhooks.md", "python", 1))


def webhooks_starlette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    with Gateway.from_config(
        {"store": "memory://", "accounts": {"card": sandbox.account_settings("payjp")}}
    ) as gw:
        ns = run(code("docs/webhooks.md", "python", 2), gw=gw)
        assert ns["app"] is not None


def webhooks_django(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> None:
    needs("django")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paygate.toml").write_text(sandbox.config_toml(store="memory://"))
    run(code("docs/webhooks.md", "python", 3))


RUN: dict[tuple[str, str, int], Callable[[Path, pytest.MonkeyPatch, Any], None]] = {
    ("README.md", "python", 0): readme_use_it,
    ("README.md", "toml", 0): readme_toml,
    ("docs/testing.md", "python", 0): doc_testing_checkout,
    ("docs/testing.md", "python", 1): doc_testing_offline,
    ("docs/architecture.md", "python", 0): architecture_adapter,
    ("docs/architecture.md", "python", 1): architecture_kit_drivers,
    ("docs/architecture.md", "python", 2): architecture_kit_script,
    ("docs/architecture.md", "python", 3): architecture_kit_emulator,
    ("docs/sandbox.md", "python", 1): sandbox_fixtures,
    ("docs/sandbox.md", "python", 2): sandbox_client_cert,
    ("docs/sandbox.md", "python", 3): sandbox_faults,
    ("docs/webhooks.md", "python", 0): webhooks_handler,
    ("docs/webhooks.md", "python", 1): webhooks_fastapi,
    ("docs/webhooks.md", "python", 2): webhooks_starlette,
    ("docs/webhooks.md", "python", 3): webhooks_django,
}


@pytest.mark.parametrize("sample", sorted(RUN), ids=lambda s: f"{s[0]}:{s[1]}{s[2]}")
def test_sample_runs(
    sample: tuple[str, str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any
) -> None:
    RUN[sample](tmp_path, monkeypatch, sandbox)


@pytest.mark.parametrize("sample", sorted(SKIPPED), ids=lambda s: f"{s[0]}:{s[1]}{s[2]}")
def test_skipped_sample_still_compiles(sample: tuple[str, str, int]) -> None:
    compile(SAMPLES[sample], "<sample>", "exec")
    pytest.skip(SKIPPED[sample])


# -- shell samples ------------------------------------------------------------------------

SHELL = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.M | re.S)


def shell_lines() -> list[tuple[str, str]]:
    lines = []
    for path in FILES:
        for match in SHELL.finditer(path.read_text(encoding="utf-8")):
            # A line ending in a backslash goes on on the next one.
            block = re.sub(r"\\\n\s*", " ", match.group(1))
            for line in block.splitlines():
                command = line.removeprefix("$ ").split("  #")[0].strip()
                prompted = match.group(1).lstrip().startswith("$ ")
                # In a block with prompts, the lines without one are output.
                if command and (line.startswith("$ ") or not prompted):
                    lines.append((path.relative_to(ROOT).as_posix(), command))
    return lines


# Commands that run elsewhere or for minutes, with where they are checked.
SHELL_ELSEWHERE = {
    "python3 -m pip install -q uv && python3 -m uv run pytest": ".ci/run runs it",
    "python3 -m pip install -q uv && python3 -m uv run paygate demo": (
        ".ci/install-test.sh runs `paygate demo` from the wheels"
    ),
    "paygate sandbox serve": "serves until stopped (the sandbox fixture serves the same app)",
}


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    """``paygate ARGS`` through the console script's `main`: exit status, stdout, stderr."""
    import contextlib
    import io
    import sys
    from unittest import mock

    from paygate.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        mock.patch.object(sys, "argv", ["paygate", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code
    return (code if isinstance(code, int) else 1 if code else 0), out.getvalue(), err.getvalue()


def check_shell(command: str) -> None:
    import shlex
    import sys

    if command in SHELL_ELSEWHERE:
        return
    words = shlex.split(command.split(" > ", maxsplit=1)[0])
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]  # VAR=value before the command
    if words[:2] == ["pip", "install"]:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for requirement in words[2:]:
            name, _, rest = requirement.partition("[")
            assert name == "paygate-jp", requirement
            assert set(rest.rstrip("]").split(",")) <= set(extras), requirement
        return
    if words[:3] == ["uv", "run", "pytest"]:
        targets, rest = [], words[3:]
        while rest:
            word = rest.pop(0)
            if word in ("-m", "-n", "-k", "-p"):
                rest = rest[1:]  # the option's value
            elif not word.startswith("-"):
                targets.append(word)
        assert targets
        assert all((ROOT / t.split("::")[0]).exists() for t in targets), targets
        return
    if "bench" in words or "tests/reliability/chaos.py" in words:
        module = ROOT / "bench" / "__main__.py" if "bench" in words else ROOT / words[-3]
        assert module.exists(), command
        return
    if words[:2] == ["paygate", "sandbox"]:
        # The console script's entry point, run in this process (starting an interpreter
        # per sample is what would be slow).
        assert (Path(sys.executable).parent / "paygate").exists()
        code, out, err = _run_cli(words[1:])
        assert code == 0, err
        assert "secret" in out.lower() or "key" in out.lower()
        return
    raise AssertionError(f"no check for the shell sample {command!r}")


@pytest.mark.parametrize("sample", shell_lines(), ids=lambda s: f"{s[0]}:{s[1][:40]}")
def test_shell_sample(sample: tuple[str, str]) -> None:
    check_shell(sample[1])
