"""The documented-response kit in paygate.testing: loading, scripted answers, shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from paygate.testing import ScriptedTransport, assert_shape, load_cases


def _case(tmp_path: Path, name: str, data: dict[str, object]) -> Path:
    (tmp_path / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    return tmp_path


def test_a_case_without_a_source_is_refused(tmp_path: Path) -> None:
    _case(tmp_path, "x", {"request": {"method": "GET", "path": "/a"}, "response": {"status": 200}})
    with pytest.raises(ValueError, match="source"):
        load_cases(tmp_path)


def test_scripted_transport_checks_method_path_and_body_subset(tmp_path: Path) -> None:
    _case(
        tmp_path,
        "refund",
        {
            "source": "https://example.invalid/docs",
            "request": {"method": "POST", "path": "/v1/x/refund", "body": {"amount": "10"}},
            "response": {"status": 200, "body": {"id": "x", "ok": True}},
        },
    )
    (case,) = load_cases(tmp_path)
    transport = ScriptedTransport(case.exchanges)
    with httpx.Client(transport=transport, base_url="https://api.example.invalid") as client:
        reply = client.post("/v1/x/refund", data={"amount": "10", "other": "1"})
    assert reply.json() == {"id": "x", "ok": True}
    transport.assert_done()

    transport = ScriptedTransport(case.exchanges)
    with httpx.Client(transport=transport, base_url="https://api.example.invalid") as client:
        with pytest.raises(AssertionError, match="document says"):
            client.post("/v1/x/refund", data={"amount": "11"})
    transport = ScriptedTransport(case.exchanges)
    with pytest.raises(AssertionError, match="never requested"):
        transport.assert_done()


def test_absent_marker_refuses_a_field(tmp_path: Path) -> None:
    _case(
        tmp_path,
        "remainder",
        {
            "source": "https://example.invalid/docs",
            "request": {"method": "POST", "path": "/r", "body": {"amount": "<absent>"}},
            "response": {"status": 200, "body": {}},
        },
    )
    (case,) = load_cases(tmp_path)
    with httpx.Client(transport=ScriptedTransport(case.exchanges)) as client:
        with pytest.raises(AssertionError, match="must not be sent"):
            client.post("https://h.invalid/r", data={"amount": "1"})


def test_assert_shape_reports_missing_keys_and_wrong_types() -> None:
    documented = {"id": "ch_1", "amount": 100, "card": {"brand": "Visa"}, "items": [{"n": 1}]}
    assert_shape(documented, {"id": "x", "amount": 5, "card": {"brand": "JCB"}, "items": []})
    with pytest.raises(AssertionError) as info:
        assert_shape(documented, {"id": 1, "card": {}, "items": [{"n": "1"}]})
    text = str(info.value)
    assert "$.id: documented string, got number" in text
    assert "$.amount: missing" in text
    assert "$.card.brand: missing" in text
    assert "$.items[].n: documented number, got string" in text
    assert_shape(documented, {"id": "x", "card": {}, "items": []}, ignore=["$.amount", "$.card"])
