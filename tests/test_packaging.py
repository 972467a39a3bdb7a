"""The wheel installs `envs/`, `tools/` and `configs/` inside `agentrl`, never at the top level."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

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


def test_wheel_installs_subpackages_under_agentrl(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
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
