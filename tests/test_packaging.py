"""The wheel installs `envs/`, `tools/` and `configs/` inside `agentrl`, never at the top level."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    site = Path(sys.argv[1]).resolve()
    import agentrl, agentrl.envs, agentrl.tools, agentrl.tools.calculator
    from agentrl.config import bundled_configs, load_config
    for module in (agentrl, agentrl.envs, agentrl.tools):
        assert site in Path(module.__file__).resolve().parents, module.__file__
    assert all(site in p.resolve().parents for p in bundled_configs().values())
    load_config("guess_grpo")
    env = agentrl.make("guess", split="test")
    env.reset(seed=0)
    print("ok", sorted(bundled_configs()))
""")


def _source_copy(dest: Path) -> Path:
    """The files a fresh clone would have (tracked, plus new files not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a fresh clone has")
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_sdist_and_wheel_install_subpackages_under_agentrl(tmp_path):
    source = _source_copy(tmp_path / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (sdist,) = (tmp_path / "dist").glob("agentrl-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for expected in (
        "setup.py",
        "envs/guess/env.py",
        "tools/calculator.py",
        "configs/guess_grpo.yaml",
    ):
        assert expected in members, f"{expected} missing from the sdist"

    (wheel,) = (tmp_path / "dist").glob("agentrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"agentrl"}, top_level
    assert "agentrl/envs/guess/env.py" in names and "agentrl/tools/calculator.py" in names
    assert "agentrl/configs/guess_grpo.yaml" in names

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok") and "guess_grpo" in result.stdout
