"""The worked example in docs/adding-an-env.md runs as written."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-an-env.md"
ROOT = DOC.parent.parent
BLOCK = re.compile(r"```python( title=(\S+))?\n(.*?)```", re.DOTALL)
EXCERPT = re.compile(r"```python source=(\S+)\n(.*?)```", re.DOTALL)


def test_tutorial_excerpts_match_the_shipped_source():
    excerpts = EXCERPT.findall(DOC.read_text())
    assert len(excerpts) >= 3, "the tutorial lost its excerpts of the Guess env"
    for path, code in excerpts:
        assert code in (ROOT / path).read_text(), f"excerpt no longer in {path}:\n{code}"


def test_adding_an_env_tutorial_runs(registry_sandbox, tmp_path, monkeypatch):
    blocks = BLOCK.findall(DOC.read_text())
    files = [(title, code) for _, title, code in blocks if title]
    snippets = [code for _, title, code in blocks if not title]
    assert files and snippets, "the tutorial lost its code blocks"
    for title, code in files:
        (tmp_path / title).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    for title, _ in files:
        monkeypatch.delitem(sys.modules, title.removesuffix(".py"), raising=False)
    for code in snippets:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, str(DOC), "exec"), {})
        for line in code.splitlines():  # printed values must match the comments beside them
            if line.startswith("print(") and "#" in line:
                assert line.split("#", 1)[1].strip() in output.getvalue()
