"""The fake provider of the core tests (``tests/fakepay``), when the checkout has it.

It is the cheapest provider to serve (one small JSON object per call), so it shows the
gateway's own cost most clearly. It is registered in-process, never installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["fake_classes"]

_TESTS = Path(__file__).resolve().parent.parent / "tests"


def fake_classes() -> tuple[Any, Any] | None:
    """``(FakeProvider, FakeEmulator)`` registered with paygate, or None when absent."""
    if not (_TESTS / "fakepay" / "__init__.py").is_file():
        return None
    if str(_TESTS) not in sys.path:
        sys.path.append(str(_TESTS))
    from fakepay import FakeEmulator, FakeProvider

    from paygate._registry import register_provider

    register_provider(FakeProvider)
    return FakeProvider, FakeEmulator
