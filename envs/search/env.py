"""Knowledge-intensive QA with a search tool: find the facts, then answer once.

    env = agentrl.make("search")                        # generated encyclopedia, BM25
    obs, info = env.reset(seed=0)    # "Question: In which city was the author of ... born?"
    env.step("search[The Amber Orchard]")   # "<information>Doc 1(Title: ...) ...</information>"
    env.step("answer[Dunmere]")             # reward 1.0 (exact match), terminated

The agent writes `<search>query</search>` and `<answer>...</answer>` (the tags of
Search-R1 and ARPO; bracket and JSON tool calls work too). A search returns the top
`topk` passages as Search-R1 shows them (`Doc i(Title: t) text`), wrapped in
`<information>...</information>` (Search-R1) or `<result>...</result>` (ARPO; `wrap`).
The answer is graded against every gold answer after SQuAD's normalisation: `info`
carries `em` and `f1`, the reward is one of them (`reward`, exact match by default as
in Search-R1), `success` is exact match. Only the agent's own answer action is graded,
so an example answer in a prompt can never be taken for it.

Questions and corpus are generated (`world.py`: multi-hop questions over made-up
entities) or, with `data_dir`, a user's Search-R1/FlashRAG files (`data.py`). The
retriever is the embedded BM25 index (default), a fake twin ("fake"), a Search-R1
retriever server ("http://host:port", e.g. `agentrl serve-retriever`), or a recording
("replay", with `record`); `record` keeps every answer so a run can be replayed without
the server. A retriever that stops answering ends the episode with an error (the
rollout records it) instead of showing the agent an error.

`action_prefix` starts the first reply with "<search>" and the last with "<answer>" (an
aid for small models; off by default, as in the originals).

Format rewards (`format_reward`, off by default) grade how each reply is written, from
the text the action was parsed from:

- "search-r1": every reply is `<think>...</think>` then one `<search>` or `<answer>`,
  nothing else; the reward is 1 for a right answer in good form, 0.8 in bad form, 0.2
  for a wrong (or no) answer in good form, 0.1 in bad form (Search-R1's
  `qa_em_format.py` with its script's structure 0.2 and final-format 0.1 scores).
- "arpo": every reply pairs its `<think>` tags, at least one reply thinks, and the
  answer is boxed (`<answer>\\boxed{...}</answer>`, the last box is graded); a reply
  that breaks this gets -1, otherwise the reward (ARPO grades with `reward="f1"`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, ClassVar

from agentrl.envs.answers import last_boxed
from agentrl.envs.search.data import load_questions
from agentrl.envs.search.grading import exact_match, f1_score, normalize_answer
from agentrl.envs.search.world import Question, generated_world
from agentrl.tools.base import Tool, Toolbox, ToolStats, split_call
from agentrl.tools.search import (
    BatchedSearch,
    BM25Search,
    CachedSearch,
    FakeSearch,
    SearchBackend,
    format_passages,
)

from agentrl.core import InvalidAction, Outcome, Split, TextEnv
from agentrl.errors import InvalidArgument

WRAPS = {
    "information": ("<information>", "</information>"),
    "result": ("<result>\n", "\n</result>"),
}
REWARDS = ("em", "f1")
FORMAT_REWARDS = (None, "search-r1", "arpo")
RETRIEVERS = ("bm25", "fake", "replay")  # or an http(s):// URL

_TAG = r"</?(?:think|search|answer|information|result)>"
_SEARCH_R1_REPLY = re.compile(
    rf"\s*<think>(?:(?!{_TAG}).)*</think>\s*<(search|answer)>(?:(?!{_TAG}).)*</\1>\s*",
    re.DOTALL,
)
_BACKENDS: dict[tuple[Any, ...], SearchBackend] = {}
_BACKEND_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}
_BACKENDS_LOCK = threading.Lock()


class SearchEnv(TextEnv):
    """Answer a question with `search[query]` calls, then `answer[text]` once."""

    default_max_turns = 4
    action_format = "tags"
    # fork() copies the episode, not the question set (NQ + HotpotQA hold 170k) nor the
    # toolbox (shared by design)
    shared_on_fork = ("questions", "_tools")
    action_examples: ClassVar[dict[str, str]] = {
        "search": "birthplace of Ada Lovelace",
        "answer": "London",
    }
    instructions = (
        "Answer the question. Think inside <think> and </think> whenever you get new "
        "information. When you lack a fact, search for it with <search> query </search>: "
        "the top results come back between <information> and </information>. Search as "
        "often as you need; when you know the answer, give it briefly inside <answer> and "
        "</answer>, e.g. <answer> Paris </answer>."
    )

    def __init__(
        self,
        split: Split = "train",
        data_dir: str | Path | None = None,
        corpus: str = "corpus.jsonl",
        num_people: int = 600,
        seed: int = 0,
        retriever: str = "bm25",
        record: str | Path | None = None,
        topk: int = 3,
        max_chars: int | None = None,
        wrap: str = "information",
        reward: str = "em",
        format_reward: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        tools: Toolbox | None = None,
        action_prefix: bool = False,
        batch_window_ms: float = 2.0,
    ) -> None:
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        if not isinstance(action_prefix, bool):
            raise InvalidArgument(f"action_prefix must be true or false; got {action_prefix!r}.")
        self.action_prefix = action_prefix
        if isinstance(batch_window_ms, bool) or not isinstance(batch_window_ms, (int, float)):
            raise InvalidArgument(f"batch_window_ms must be a number; got {batch_window_ms!r}.")
        if batch_window_ms < 0:
            raise InvalidArgument(f"batch_window_ms must be >= 0; got {batch_window_ms!r}.")
        self.batch_window_ms = batch_window_ms
        _check_choice("wrap", wrap, tuple(WRAPS))
        _check_choice("reward", reward, REWARDS)
        _check_choice("format_reward", format_reward, FORMAT_REWARDS)
        is_url = isinstance(retriever, str) and retriever.startswith(("http://", "https://"))
        if not is_url:
            _check_choice("retriever", retriever, RETRIEVERS, "or an http:// URL")
        if action_prefix and format_reward == "search-r1":
            raise InvalidArgument(
                "action_prefix starts replies with <search> or <answer>, which Search-R1's "
                "format (<think> first) never allows: turn one of them off."
            )
        if data_dir is None and corpus != "corpus.jsonl":
            raise InvalidArgument(
                f"corpus={corpus!r} names a file inside data_dir, which is not set; set "
                "data_dir to the folder holding it (or leave corpus unset)."
            )
        if retriever == "replay" and record is None:
            raise InvalidArgument(
                "retriever='replay' answers from a recording: set record to the file a "
                "run with record=... wrote."
            )
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise InvalidArgument(f"topk must be a positive integer; got {topk!r}.")
        self.data_dir = data_dir
        self.corpus_file = corpus
        self.num_people, self.seed = num_people, seed
        self.retriever, self.record = retriever, record
        self.topk, self.max_chars = topk, max_chars
        self.wrap, self.reward_kind, self.format_reward = wrap, reward, format_reward
        if data_dir is None:
            self.questions = generated_world(num_people, seed).questions
        else:
            self.questions = load_questions(data_dir)
        self._tools = tools
        self.tool_stats = ToolStats()
        self.question: Question | None = None
        self.results: list[str] = []  # what this episode's searches returned
        self._well_formed = True
        self._thought = False
        self._replies = 0
        self._retrieved = False

    # -- the tool ---------------------------------------------------------------------

    @property
    def tools(self) -> Toolbox:  # type: ignore[override]
        """The env's tools: by default a `search` tool over the configured retriever,
        built on first use and shared by every env with the same data and retriever."""
        if self._tools is None:
            self._tools = Toolbox([self._search_tool()])
        return self._tools

    @property
    def action_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.tools.names, "answer")

    def backend(self) -> SearchBackend:
        """The retriever (one per data, retriever and recording in a process)."""
        corpus_path = None
        if self.data_dir is not None and self.retriever in ("bm25", "fake"):
            corpus_path = Path(self.data_dir).expanduser().resolve() / self.corpus_file
        key = (
            self.retriever,
            self.num_people,
            self.seed,
            str(corpus_path),
            str(Path(self.record).expanduser().resolve()) if self.record else None,
            self.batch_window_ms,
        )
        with _BACKENDS_LOCK:  # one lock per key: a slow build holds up only its own key
            lock = _BACKEND_LOCKS.setdefault(key, threading.Lock())
        with lock:
            if key not in _BACKENDS:
                _BACKENDS[key] = self._make_backend(corpus_path)
            return _BACKENDS[key]

    def _make_backend(self, corpus_path: Path | None) -> SearchBackend:
        backend: SearchBackend | None = None
        if self.retriever in ("bm25", "fake"):
            if corpus_path is None:
                corpus = generated_world(self.num_people, self.seed).corpus
            else:
                from agentrl.tools.retriever import load_corpus

                if not corpus_path.is_file():
                    raise InvalidArgument(
                        f"the {self.retriever} retriever needs the corpus {corpus_path} "
                        "(JSON lines with id and contents); set corpus= to its file name, "
                        "or use a retriever server: retriever='http://127.0.0.1:8000'."
                    )
                corpus = load_corpus(corpus_path)
            backend = BM25Search(corpus) if self.retriever == "bm25" else FakeSearch(corpus)
        elif self.retriever != "replay":
            from agentrl.tools.retriever import HTTPSearch

            backend = HTTPSearch(self.retriever)
            if self.batch_window_ms > 0:  # concurrent envs' searches share one request
                backend = BatchedSearch(backend, window_s=self.batch_window_ms / 1000)
        if self.record is not None:
            return CachedSearch(backend, self.record)
        assert backend is not None
        return backend

    def _search_tool(self) -> Tool:
        open_tag, close_tag = WRAPS[self.wrap]
        backend, topk, max_chars = self.backend(), self.topk, self.max_chars

        def search(query: str) -> str:
            """Search the knowledge source for passages about a query.

            Args:
                query: what to look for, in a few words
            """
            [passages] = backend.search([query], topk)
            found = format_passages(passages, max_chars).strip()
            if not passages:  # BM25 finds nothing without a shared word (dense never)
                found = f"No passage matches {query!r}; search with other words."
            return f"{open_tag}{found}{close_tag}"

        # No timeout of the tool's own: BM25 and a recording answer at once, and the HTTP
        # client bounds its attempts and then raises RetrieverUnavailable, which fails
        # the episode; a tool timeout would show the agent an outage as a result.
        return Tool.from_function(search, timeout_s=None)

    # -- tasks ------------------------------------------------------------------------

    def num_tasks(self, split: Split) -> int:
        return len(self.questions[split])

    def task_id(self, split: Split, index: int) -> str:
        return self.questions[split][index].id

    def load_task(self, split: Split, index: int) -> str:
        self.question = self.questions[split][index]
        self.tool_stats = ToolStats()
        self._well_formed, self._thought, self._retrieved = True, False, False
        self._replies = 0
        self.results: list[str] = []
        return f"Question: {self.question.question}"

    def act(self, action: str) -> Outcome:
        assert self.question is not None
        call = split_call(action)
        name = call[0] if call else ""
        if name != "answer" and name not in self.tools.names:
            raise InvalidAction(
                f"Invalid action {action[:80]!r}. Search with <search> query </search>, or "
                "give the final answer with <answer> text </answer>."
            )
        self._check_form(getattr(action, "reply", None))  # the rollout's reply text
        if name != "answer":
            result = self.tools.call(name, call[1])
            self.tool_stats.add(result)
            self.results.append(result.observation)
            gold = {normalize_answer(a) for a in self.question.answers}
            seen = normalize_answer(result.observation)
            self._retrieved |= any(g and g in seen for g in gold)
            info = {**self.tools.info(result), **self.tool_stats.flat()}
            if self.turn >= self.max_turns:  # the last turn: no answer came
                return Outcome(result.observation, reward=self._graded(None), info=info)
            return Outcome(result.observation, info=info)
        arguments = call[1]
        text = arguments if isinstance(arguments, str) else str(next(iter(arguments.values()), ""))
        answer = text.strip()
        if self.format_reward == "arpo":
            boxed = last_boxed(answer)
            self._well_formed &= boxed is not None
            answer = boxed if boxed is not None else answer
        em = exact_match(answer, self.question.answers)
        f1 = f1_score(answer, self.question.answers)
        score = em if self.reward_kind == "em" else f1
        return Outcome(
            f"Your answer: {answer}",
            reward=self._graded(score),
            terminated=True,
            success=bool(em),
            info={
                "em": em,
                "f1": f1,
                "answer": answer,
                "kind": self.question.kind,
                "well_formed": self._well_formed,
                "answer_retrieved": self._retrieved,
                **self.tool_stats.flat(),
            },
        )

    def _check_form(self, reply: str | None) -> None:
        """Record whether `reply` (the text the action came from) keeps the format."""
        if reply is None or self.format_reward is None:
            return
        self._replies += 1
        if self.format_reward == "search-r1":
            self._well_formed &= _SEARCH_R1_REPLY.fullmatch(reply) is not None
        else:
            opened, closed = reply.count("<think>"), reply.count("</think>")
            self._well_formed &= opened == closed
            self._thought |= opened > 0

    def _graded(self, score: float | None) -> float:
        """The reward of an answer's `score` (None: no answer) under the format reward."""
        form = self.format_reward
        if form is None:
            return score or 0.0
        thought = self._thought or not self._replies  # actions made outside a rollout
        if form == "arpo":
            return -1.0 if score is None or not (self._well_formed and thought) else score
        if score is None:  # Search-R1's format needs the final </answer>: never well formed
            return 0.0
        right = score >= 1.0
        if self._well_formed:
            return 1.0 if right else 0.2
        return 0.8 if right else 0.1

    def response_prefix(self) -> str:
        """With `action_prefix` (an aid for small models, tags format; the CPU recipes
        turn it on): the first reply starts with "<search>" and the last with "<answer>",
        so the agent searches before answering and always answers."""
        if not self.action_prefix or self.question is None or self.done:
            return ""
        if self.turn == 0:
            return "<search>"
        return "<answer>" if self.turn >= self.max_turns - 1 else ""

    def valid_actions(self) -> list[str]:
        question = self.question.question if self.question else "anything"
        return [f"search[{question}]", "answer[unknown]"]


def _check_choice(name: str, value: Any, choices: tuple, extra: str = "") -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidArgument(
            f"{name} must be one of {listed}{' ' + extra if extra else ''}; got {value!r}."
        )
