"""Real QA data for the search env, in the formats Search-R1 and FlashRAG use.

    env = agentrl.make("search", data_dir="~/data/nq")   # QA files, and a corpus for BM25

`data_dir` holds one QA file per split and, for the embedded BM25 retriever, the corpus:

- QA: `train`, `valid` (or `dev`, `val`) and `test`, each `.jsonl` or `.parquet`
  (numbers among the gold answers are read as written, 1950 as "1950").
  A row is FlashRAG's (`question`, `golden_answers`: a list or one string) or the
  Parquet Search-R1's `nq_search.py` writes, which keeps the answers in
  `reward_model.ground_truth.target` and the question at the end of the prompt
  (after its last "Question: "). Without a valid file, the last tenth of train (at
  most 500 questions) is the valid split. A question also in a later split is dropped
  (train loses those in valid or test, valid those in test; each counted in a
  warning), so the splits stay disjoint.
- corpus: `corpus.jsonl` (the name is a setting): lines with `id` and `contents`, the
  title in quotes on the first line. Not needed with an HTTP retriever.

Parquet needs `pyarrow` (`pip install pyarrow`); JSON lines need nothing.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

from agentrl.envs.search.grading import normalize_answer
from agentrl.envs.search.world import Question

from agentrl.errors import InvalidArgument

SPLIT_FILES = {"train": ("train",), "valid": ("valid", "dev", "val"), "test": ("test",)}
VALID_FROM_TRAIN = (0.1, 500)  # share of train, and at most this many questions


def find_file(directory: Path, stems: tuple[str, ...]) -> Path | None:
    """The first `<stem>.jsonl` or `<stem>.parquet` in `directory`."""
    for stem in stems:
        for suffix in (".jsonl", ".parquet"):
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def load_questions(data_dir: str | Path) -> dict[str, list[Question]]:
    """The QA split files of `data_dir` as questions (ids `<split>-<row>`); read once per
    process while the files are unchanged (every env on them shares the questions)."""
    directory = Path(data_dir).expanduser().resolve()
    if not directory.is_dir():
        raise InvalidArgument(
            f"data_dir must be a directory holding train/test QA files (.jsonl or .parquet); "
            f"{str(data_dir)!r} is not one. Leave data_dir unset for the generated questions."
        )
    files = [find_file(directory, stems) for stems in SPLIT_FILES.values()]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f)
    return _load(directory, stamp)


@functools.lru_cache(maxsize=8)
def _load(directory: Path, stamp: tuple) -> dict[str, list[Question]]:
    rows: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for split, stems in SPLIT_FILES.items():
        path = find_file(directory, stems)
        if path is None:
            if split == "valid":
                continue
            names = " or ".join(f"{s}.jsonl/.parquet" for s in stems)
            raise InvalidArgument(f"{directory} has no {split} QA file: expected {names}.")
        rows[split] = [_row(record, path, line) for line, record in _records(path)]
        if not rows[split]:
            raise InvalidArgument(f"{path} holds no questions.")
    if "valid" not in rows:
        share, cap = VALID_FROM_TRAIN
        size = max(1, min(cap, int(len(rows["train"]) * share)))
        if len(rows["train"]) <= size:
            raise InvalidArgument(
                f"{directory} has no valid file and too few train questions "
                f"({len(rows['train'])}) to set some aside; add valid.jsonl."
            )
        rows["valid"] = rows["train"][-size:]
        rows["train"] = rows["train"][:-size]
    tested = {normalize_answer(q) for q, _ in rows["test"]}
    for split, held in (("valid", tested), ("train", None)):
        if held is None:
            held = tested | {normalize_answer(q) for q, _ in rows["valid"]}
        kept = [row for row in rows[split] if normalize_answer(row[0]) not in held]
        if len(kept) < len(rows[split]):
            later = "test" if split == "valid" else "valid or test"
            warnings.warn(
                f"{len(rows[split]) - len(kept)} {split} questions of {directory} are also "
                f"in {later}; they are left out of {split}",
                stacklevel=2,
            )
        rows[split] = kept
    if not rows["valid"] or not rows["train"]:
        raise InvalidArgument(
            f"{directory}: after removing questions that are also in a later split, "
            f"train has {len(rows['train'])} and valid {len(rows['valid'])}; each needs one."
        )
    return {
        split: [
            Question(f"{split}-{i}", question, answers, "qa", ())
            for i, (question, answers) in enumerate(rows[split])
        ]
        for split in ("train", "valid", "test")
    }


def _records(path: Path):
    """(line or row number, record) of a JSON lines or Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InvalidArgument(
                f"{path} is Parquet, which needs pyarrow: `pip install pyarrow`, or convert "
                "it to JSON lines."
            ) from None
        yield from enumerate(pq.read_table(path).to_pylist(), 1)
        return
    with path.open(encoding="utf-8-sig") as lines:  # a byte-order mark is not JSON
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"{path}:{number} is not JSON: {exc}") from None


def _row(record: Any, path: Path, line: int) -> tuple[str, tuple[str, ...]]:
    """(question, gold answers) of a FlashRAG or Search-R1 row."""
    where = f"{path}:{line}" if path.suffix == ".jsonl" else f"{path} row {line}"
    if not isinstance(record, dict):
        raise InvalidArgument(f"{where} is not an object with question and golden_answers.")
    question, answers = record.get("question"), record.get("golden_answers")
    if answers is None:  # Search-R1's training Parquet
        target = ((record.get("reward_model") or {}).get("ground_truth") or {}).get("target")
        answers = target
        if question is None:
            prompt = record.get("prompt") or []
            text = prompt[-1].get("content", "") if prompt else ""
            if "Question:" in text:
                question = text.rsplit("Question:", 1)[1]
    if isinstance(answers, (str, int, float)) and not isinstance(answers, bool):
        answers = [answers]
    if isinstance(answers, list):  # numbers as they are written: 1950, 3.5
        answers = [
            str(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a
            for a in answers
        ]
    if not isinstance(question, str) or not question.strip():
        raise InvalidArgument(f"{where} has no question (a non-empty 'question' string).")
    if not answers or not all(isinstance(a, str) for a in answers):
        raise InvalidArgument(
            f"{where} has no usable gold answers (got {answers!r}): expected "
            "'golden_answers', a list of strings or numbers, or Search-R1's "
            "reward_model.ground_truth.target."
        )
    return question.strip(), tuple(answers)
