"""The docs the code points to exist, and the maths the code cites ships in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("agentrl", "envs", "tools") for p in (ROOT / folder).rglob("*.py")]


def test_every_docs_reference_in_the_code_names_a_file_of_the_repository():
    cited = {}
    for path in SOURCES:
        for name in re.findall(r"docs/[\w.-]+\.md", path.read_text(encoding="utf-8")):
            cited.setdefault(name, path)
    assert "docs/algorithms.md" in cited
    missing = {name: str(path) for name, path in cited.items() if not (ROOT / name).is_file()}
    assert not missing


def test_the_maths_is_cited_from_the_repository_not_from_outside_it():
    stale = [str(p) for p in SOURCES if "ALGORITHMS.md" in p.read_text(encoding="utf-8")]
    assert not stale
    text = (ROOT / "docs" / "algorithms.md").read_text(encoding="utf-8")
    for section in ["GRPO", "PPO-clip", "ARPO", "AEPO", "EPO", "EMPG", "Clip-Cov", "GiGPO"]:
        assert f"## {section}" in text or f", {section}" in text, section
    assert "population standard deviation" in text
