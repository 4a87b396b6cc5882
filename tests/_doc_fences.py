"""The fenced code samples of Markdown pages, keyed for the doc-sample tests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def samples(
    files: Iterable[Path], root: Path, languages: Iterable[str]
) -> dict[tuple[str, str, int], str]:
    """Every fenced sample in ``languages``, keyed ``(page relative to root, language,
    index of the sample among the page's samples of that language)``."""
    fence = re.compile(rf"^```({'|'.join(languages)})\n(.*?)^```", re.M | re.S)
    found: dict[tuple[str, str, int], str] = {}
    for path in files:
        counts: dict[str, int] = {}
        for match in fence.finditer(path.read_text(encoding="utf-8")):
            lang = match.group(1)
            index = counts.get(lang, 0)
            counts[lang] = index + 1
            found[(path.relative_to(root).as_posix(), lang, index)] = match.group(2)
    return found
