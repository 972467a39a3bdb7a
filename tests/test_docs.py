"""The docs the code points to exist, the maths the code cites ships in the repository,
and the tutorials run as written."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

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


# Tutorials: blocks `python source=PATH` quote shipped code (they must still be in it);
# blocks `python title=NAME.py` are files the reader writes; plain `python` blocks run,
# in order, and a `print(...)  # text` line must print that text.
TUTORIALS = [
    "adding-an-env.md",
    "adding-an-algorithm.md",
    "adding-an-engine.md",
    "adding-a-tool.md",
]
BLOCK = re.compile(r"```python( title=(\S+))?\n(.*?)```", re.DOTALL)
EXCERPT = re.compile(r"```python source=(\S+)\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_excerpts_match_the_shipped_source(name):
    for path, code in EXCERPT.findall((ROOT / "docs" / name).read_text(encoding="utf-8")):
        assert code in (ROOT / path).read_text(encoding="utf-8"), f"{name}: not in {path}:\n{code}"
    if name == "adding-an-env.md":
        assert len(EXCERPT.findall((ROOT / "docs" / name).read_text(encoding="utf-8"))) >= 3


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs(name, registry_sandbox, algo_sandbox, engine_sandbox, tmp_path, monkeypatch):
    doc = ROOT / "docs" / name
    blocks = BLOCK.findall(doc.read_text(encoding="utf-8"))
    files = [(title, code) for _, title, code in blocks if title]
    snippets = [code for _, title, code in blocks if not title]
    assert files and snippets, f"{name} lost its code blocks"
    for title, code in files:
        (tmp_path / title).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for title, _ in files:
        monkeypatch.delitem(sys.modules, title.removesuffix(".py"), raising=False)
    for code in snippets:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, str(doc), "exec"), {})
        for line in code.splitlines():  # printed values must match the comments beside them
            if line.startswith("print(") and "#" in line:
                expected = line.split("#", 1)[1].strip()
                assert expected in output.getvalue(), (expected, output.getvalue())
