"""What every benchmark does last: write its figures, with the machine and its arguments."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def write_results(
    path: Path, payload: dict[str, Any], args: argparse.Namespace | None = None, **meta: Any
) -> None:
    """Write `payload` to `path` as JSON, under a "meta" entry naming the machine, the
    versions, the command-line arguments and `meta`; print where it went."""
    described = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    if "torch" in sys.modules:
        described["torch"] = sys.modules["torch"].__version__
    for key, value in {**(vars(args) if args else {}), **meta}.items():
        plain = isinstance(value, (str, int, float, bool, type(None)))
        described[key] = value if plain else str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": described, **payload}, indent=2))
    print(f"wrote {path}")
