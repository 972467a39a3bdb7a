"""Maths word problems in the formats users have: GSM8K and MATH-style JSON lines.

    env = agentrl.make("code", data_dir="~/data/gsm8k")

`data_dir` holds `train.jsonl`, `test.jsonl` and optionally `valid.jsonl` (or
`dev.jsonl`, `val.jsonl`; without one, the last tenth of train, at most 500 problems).
A line has `question` (or `problem`) and `answer` (or `solution`): GSM8K's worked
solution ending in `#### 42`, a solution with a `\\boxed{...}` answer (MATH), or the
answer alone. Only answers that read as a number (`agentrl.envs.answers.parse_number`)
can be graded; a line whose answer is not one is named in the error.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from agentrl.envs.answers import last_boxed, parse_number
from agentrl.envs.code.tasks import Problem

from agentrl.errors import InvalidArgument

SPLIT_FILES = {"train": ("train",), "valid": ("valid", "dev", "val"), "test": ("test",)}


def load_problems(data_dir: str | Path) -> dict[str, list[Problem]]:
    """The problems of each split of `data_dir` (read once per process per file state)."""
    directory = Path(data_dir).expanduser().resolve()
    if not directory.is_dir():
        raise InvalidArgument(
            f"data_dir must be a directory with train.jsonl and test.jsonl (GSM8K or MATH "
            f"style); {str(data_dir)!r} is not one. Leave it unset for generated problems."
        )
    files = {split: _find(directory, stems) for split, stems in SPLIT_FILES.items()}
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files.values() if f is not None)
    return _load(directory, stamp)


def _find(directory: Path, stems: tuple[str, ...]) -> Path | None:
    return next(
        (directory / f"{s}.jsonl" for s in stems if (directory / f"{s}.jsonl").is_file()), None
    )


@functools.lru_cache(maxsize=8)
def _load(directory: Path, stamp: tuple) -> dict[str, list[Problem]]:
    rows: dict[str, list[tuple[str, str]]] = {}
    for split, stems in SPLIT_FILES.items():
        path = _find(directory, stems)
        if path is None:
            if split == "valid":
                continue
            raise InvalidArgument(f"{directory} has no {stems[0]}.jsonl (GSM8K/MATH JSON lines).")
        rows[split] = list(_rows(path))
        if not rows[split]:
            raise InvalidArgument(f"{path} holds no problems.")
    if "valid" not in rows:
        size = max(1, min(500, len(rows["train"]) // 10))
        if len(rows["train"]) <= size:
            raise InvalidArgument(
                f"{directory}: too few train problems to set some aside for valid; add valid.jsonl."
            )
        rows["valid"], rows["train"] = rows["train"][-size:], rows["train"][:-size]
    return {
        split: [
            Problem(f"{split}-{i}", q, a, 0.0, "", "data") for i, (q, a) in enumerate(rows[split])
        ]
        for split in ("train", "valid", "test")
    }


def _rows(path: Path):
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{path}:{number} is not JSON: {exc}") from None
            question = (
                record.get("question", record.get("problem")) if isinstance(record, dict) else None
            )
            answer = (
                record.get("answer", record.get("solution")) if isinstance(record, dict) else None
            )
            if not isinstance(question, str) or not question.strip() or answer is None:
                raise InvalidArgument(
                    f"{path}:{number} needs 'question' (or 'problem') and 'answer' (or 'solution')."
                )
            yield question.strip(), _final_answer(str(answer), f"{path}:{number}")


def _final_answer(answer: str, where: str) -> str:
    """The final answer of a GSM8K solution (after ####), a MATH one (\\boxed), or as is."""
    if "####" in answer:
        final = answer.rsplit("####", 1)[1]
    else:
        boxed = last_boxed(answer)
        final = boxed if boxed is not None else answer
    final = final.strip()
    if parse_number(final, lenient=False) is None:
        raise InvalidArgument(
            f"{where}: the answer {final[:60]!r} is not a number this env can grade "
            "(integers, decimals, a/b, \\frac{a}{b})."
        )
    return final
