"""The import layers of pyproject.toml hold: nothing imports upward, nothing forms a cycle.

import-linter reads a package from its folder, and the repository keeps `envs/` and
`tools/` beside `agentrl/` (setup.py installs them inside it), so the check runs on a
copy of the sources laid out as installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {
    "agentrl": ROOT / "agentrl",
    "agentrl/envs": ROOT / "envs",
    "agentrl/tools": ROOT / "tools",
}


def installed_layout(where: Path) -> Path:
    """The package's Python files under `where`, as pip installs them."""
    for target, source in SOURCES.items():
        shutil.copytree(
            source,
            where / target,
            ignore=lambda folder, names: [
                n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir()
            ],
            dirs_exist_ok=True,
        )
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "pyproject.toml", "--no-cache"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": str(lint.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


pytest.importorskip("importlinter", reason="import-linter is a dev dependency (make setup)")


def test_the_layers_hold(tmp_path):
    result = lint_imports(installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module,line",
    [
        ("agentrl/rollout/upward.py", "from agentrl.train import update"),  # rollout -> trainer
        ("agentrl/envs/upward.py", "import agentrl.rollout.manager"),  # an env -> rollout
        ("agentrl/seeding_extra.py", "import agentrl.algos"),  # the base -> algos
    ],
)
def test_an_upward_import_breaks_them(tmp_path, module, line):
    where = installed_layout(tmp_path)
    (where / module).write_text(line + "\n")
    if module == "agentrl/seeding_extra.py":  # a new base module, placed in the base layer
        config = (where / "pyproject.toml").read_text()
        (where / "pyproject.toml").write_text(
            config.replace('"agentrl.checkpoint |', '"agentrl.seeding_extra | agentrl.checkpoint |')
        )
    result = lint_imports(where)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout


def test_every_module_has_a_layer():
    # A module in no layer would escape the check: each must be placed.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = config["tool"]["importlinter"]["contracts"]
    placed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    modules = {f"agentrl.{p.stem}" for p in (ROOT / "agentrl").iterdir() if p.suffix == ".py"} | {
        f"agentrl.{p.name}" for p in (ROOT / "agentrl").iterdir() if (p / "__init__.py").is_file()
    }
    modules |= {"agentrl.envs", "agentrl.tools"}
    assert modules - {"agentrl.__init__", "agentrl.__main__"} == placed
