"""The docs the code points to exist, and the maths the code cites ships in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    p
    for folder in ("agentrl", "envs", "tools", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
]


def test_every_docs_reference_in_the_code_names_a_file_of_the_repository():
    cited = {}
    for path in SOURCES:
        for name in re.findall(r"docs/[\w.-]+\.md", path.read_text(encoding="utf-8")):
            cited.setdefault(name, path)
    assert "docs/algorithms.md" in cited
    missing = {name: str(path) for name, path in cited.items() if not (ROOT / name).is_file()}
    assert not missing


def test_every_markdown_file_the_code_cites_is_in_the_repository():
    # A bare name (no folder) is looked up at the top and under docs/.
    missing = []
    for path in SOURCES:
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8")):
            if not any((ROOT / folder / name).is_file() for folder in (".", "docs")):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing


def test_the_maths_page_covers_every_method():
    text = (ROOT / "docs" / "algorithms.md").read_text(encoding="utf-8")
    for section in ["GRPO", "PPO-clip", "ARPO", "AEPO", "EPO", "EMPG", "Clip-Cov", "GiGPO"]:
        assert f"## {section}" in text or f", {section}" in text, section
    assert "population standard deviation" in text
