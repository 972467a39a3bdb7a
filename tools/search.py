"""Search backends behind one small interface: embedded BM25 and a fake twin for tests.

    corpus = [{"id": "0", "contents": '"Ada Lovelace"\\nAda Lovelace wrote the first ...'}]
    backend = BM25Search(corpus)                   # index built once, cached on disk
    [[best, *_]] = backend.search(["who wrote the first program"], k=3)
    best.title, best.text, best.score              # "Ada Lovelace", "Ada Lovelace wrote ...", 2.1
    format_passages([best])                        # 'Doc 1(Title: "Ada Lovelace") Ada ...\\n'
    tool = search_tool(backend, k=3)               # search(query) -> "Doc 1(Title: ...) ..."

A corpus is what Search-R1 and FlashRAG retrievers serve: documents with an `id` and
`contents`, the title in quotes on the first line, then the text. `BM25Search` indexes
it with `bm25s` and keeps the index under `$AGENTRL_CACHE/bm25/<hash of the corpus>`,
so a corpus is indexed once; `mmap=True` maps a large index from disk instead of
reading it into memory. `FakeSearch` answers by word overlap from memory, with the
same interface and the same result shape, so tools and envs are tested without an
index. `agentrl.tools.retriever.HTTPSearch` is the same interface over HTTP, and
`CachedSearch` wraps any of them: the same query gets the same answer, and answers can be
recorded to a file and replayed without the backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentrl.tools.base import Tool, ToolUnavailable
from bm25s.stopwords import STOPWORDS_EN

from agentrl.errors import InvalidArgument

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(STOPWORDS_EN)  # Lucene's English list, as WebShop's search uses


@dataclass(frozen=True)
class Passage:
    """One retrieved document: its `contents` as the corpus holds them (the title in
    quotes on the first line, then the text), and its score."""

    id: str
    contents: str
    score: float

    @property
    def title(self) -> str:
        return split_contents(self.contents)[0]

    @property
    def text(self) -> str:
        return split_contents(self.contents)[1]


def split_contents(contents: str) -> tuple[str, str]:
    """Title and text of Search-R1 `contents` (no quoted first line: no title)."""
    first, _, rest = contents.partition("\n")
    if len(first) >= 2 and first.startswith('"') and first.endswith('"'):
        return first[1:-1], rest
    return "", contents


class SearchBackend(Protocol):
    """What search tools and envs need from a retriever."""

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """For each query, at most `k` passages, best first."""
        ...


def tokenize(text: str) -> list[str]:
    """Lower-case words without English stopwords."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _documents(corpus: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(id, contents) per document, checked."""
    out = []
    for i, document in enumerate(corpus):
        if not isinstance(document, Mapping) or "contents" not in document:
            raise InvalidArgument(
                f"corpus document {i} must be a mapping with 'id' and 'contents' (the title "
                f"in quotes on the first line, then the text); got {str(document)[:80]!r}"
            )
        out.append((str(document.get("id", i)), str(document["contents"])))
    if not out:
        raise InvalidArgument("the corpus is empty; a search backend needs documents")
    return out


class FakeSearch:
    """The test twin: scores documents by the query words they contain (ties by corpus
    order), from memory; records every query."""

    def __init__(self, corpus: Sequence[Mapping[str, Any]]) -> None:
        self.documents = _documents(corpus)
        self._words = [set(tokenize(contents)) for _, contents in self.documents]
        self.queries: list[str] = []

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        self.queries += list(queries)
        out = []
        for query in queries:
            words = set(tokenize(query))
            scored = [(len(words & doc), -i) for i, doc in enumerate(self._words)]
            best = sorted((s for s in scored if s[0] > 0), reverse=True)[:k]
            out.append([self._passage(-i, float(score)) for score, i in best])
        return out

    def _passage(self, index: int, score: float) -> Passage:
        return Passage(*self.documents[index], score)


class BM25Search:
    """BM25 (`bm25s`) over a corpus, its index cached on disk by the corpus's content.

    Args:
        corpus: documents with `id` and `contents`.
        cache_dir: where indices live (default `$AGENTRL_CACHE/bm25`).
        mmap: map the index from disk rather than loading it (large corpora).

    Queries are scored with bm25s's index but not its `retrieve` (slow per query, see
    `_scores` and `best`): the same scores, ties in document order.
    """

    def __init__(
        self,
        corpus: Sequence[Mapping[str, Any]],
        cache_dir: str | Path | None = None,
        mmap: bool = False,
    ) -> None:
        import bm25s

        self.documents = _documents(corpus)
        self._dense_cache: dict[int, Any] = {}
        self._leader_cache: dict[int, Any] = {}
        if cache_dir is None:
            from agentrl.models import cache_dir as agentrl_cache

            cache_dir = agentrl_cache() / "bm25"
        digest = hashlib.sha256(
            json.dumps(self.documents, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        self.index_dir = Path(cache_dir) / digest
        self.loaded_from_cache = (self.index_dir / "params.index.json").is_file()
        if self.loaded_from_cache:
            self._bm25 = bm25s.BM25.load(str(self.index_dir), mmap=mmap, show_progress=False)
        else:
            self._bm25 = bm25s.BM25()
            tokens = [tokenize(contents) for _, contents in self.documents]
            self._bm25.index(tokens, show_progress=False)
            staging = self.index_dir.with_name(self.index_dir.name + ".partial")
            self._bm25.save(str(staging), show_progress=False)
            try:  # whole or absent, even if two runs race
                staging.replace(self.index_dir)
            except OSError:  # another run put its (equal) index there first
                shutil.rmtree(staging, ignore_errors=True)
                if not (self.index_dir / "params.index.json").is_file():
                    raise
            if mmap:
                self._bm25 = bm25s.BM25.load(str(self.index_dir), mmap=True, show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        k = min(k, len(self.documents))
        out: list[list[Passage]] = [[] for _ in queries]
        if k < 1:
            return out
        known = self._bm25.vocab_dict
        for i, query in enumerate(queries):
            ids = [known[w] for w in tokenize(query) if w in known]
            if not ids:  # no word of the corpus: nothing matches
                continue
            scores = self._scores(ids)
            top = best(scores, k, self._floor(ids, k, scores))
            out[i] = [Passage(*self.documents[d], s) for d, s in top]
        return out

    def _floor(self, ids: list[int], k: int, scores: Any) -> float:
        """A score the k-th best document reaches, so that `best` looks only at the
        documents scoring that much (a few, rather than every page that holds "born"):
        the k-th best score among some documents likely to be near the top, each word's
        best-scoring ones (all of a rare word's). Any k documents' k-th best score is a
        floor for the k-th best of all; 0 when the query's words hold fewer than k."""
        import numpy as np

        found = np.unique(np.concatenate([self._leaders(t) for t in set(ids)]))
        if len(found) < k:
            return 0.0
        return float(-np.partition(-scores[found], k - 1)[k - 1])

    def _leaders(self, token: int) -> Any:
        """The (at most 16) documents where `token` scores highest, cached per token."""
        import numpy as np

        leaders = self._leader_cache.get(token)
        if leaders is None:
            index = self._bm25.scores
            start, end = index["indptr"][token], index["indptr"][token + 1]
            data, docs = index["data"][start:end], index["indices"][start:end]
            if len(docs) > 16:
                docs = docs[np.argpartition(-data, 15)[:16]]
            leaders = self._leader_cache[token] = np.asarray(docs)
        return leaders

    def _scores(self, ids: list[int]) -> Any:
        """BM25 scores of every document for a query's token ids: what bm25s's
        `get_scores_from_ids` computes, several times faster: bm25s adds each token's
        posting list with `np.add.at` (and `retrieve` starts a thread pool per call); a
        posting list holds each document once, so plain fancy-index addition gives the
        same float32 sums in the same order."""
        import numpy as np

        index, bm25 = self._bm25.scores, self._bm25
        data, indices, indptr = index["data"], index["indices"], index["indptr"]
        scores = np.zeros(index["num_docs"], dtype=np.dtype(bm25.dtype))
        for token in ids:
            start, end = indptr[token], indptr[token + 1]
            if end - start > len(scores) // 8:  # a common word: add it densely
                scores += self._dense(token)  # x + 0.0 == x: the same sums
            else:
                scores[indices[start:end]] += data[start:end]
        if bm25.nonoccurrence_array is not None:  # BM25 variants with a floor score
            scores += bm25.nonoccurrence_array[np.asarray(ids)].sum()
        return scores

    def _dense(self, token: int) -> Any:
        """A common word's scores as a dense vector (the 32 most recent are kept): adding
        100k contiguous numbers is several times faster than scattering 40k."""
        import numpy as np

        dense = self._dense_cache.pop(token, None)
        if dense is None:
            index = self._bm25.scores
            start, end = index["indptr"][token], index["indptr"][token + 1]
            dense = np.zeros(index["num_docs"], dtype=np.dtype(self._bm25.dtype))
            dense[index["indices"][start:end]] = index["data"][start:end]
            if len(self._dense_cache) >= 32:
                self._dense_cache.pop(next(iter(self._dense_cache)))
        self._dense_cache[token] = dense  # most recent last
        return dense


def best(scores: Any, k: int, floor: float = 0.0) -> list[tuple[int, float]]:
    """The (document, score) pairs of the `k` highest positive scores, best first, equal
    scores in document order. bm25s's `topk` partitions all scores, which is slow
    when most are 0 (4 ms at 100k documents) and orders ties arbitrarily; this looks at
    the positive scores only, and its order is reproducible."""
    import numpy as np

    if k < 1:
        return []
    # ascending document order; `floor` (a score the k-th best reaches) skips the rest
    docs = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
    return best_of(docs, scores[docs], k)


def best_of(docs: Any, values: Any, k: int) -> list[tuple[int, float]]:
    """`best` over the documents `docs` (ascending) with scores `values`."""
    import numpy as np

    if k < 1:
        return []
    keep = values > 0
    docs, values = docs[keep], values[keep]
    if len(docs) > k:
        kth = -np.partition(-values, k - 1)[k - 1]  # a small kth: 4x faster on ties
        above, tied = docs[values > kth], docs[values == kth]
        chosen = np.concatenate([above, tied[: k - len(above)]])
        values = values[np.searchsorted(docs, chosen)]
        docs = chosen
    order = np.lexsort((docs, -values))  # score descending, then document
    return [(int(docs[j]), float(values[j])) for j in order]


def format_passages(passages: Sequence[Passage], max_chars: int | None = None) -> str:
    """What Search-R1 shows the agent: `Doc i(Title: <first line>) <the rest>` and a
    newline per passage, the first line of `contents` as it is (quotes included), ""
    for none. `max_chars` cuts each passage's text to its share of the budget, a
    departure from Search-R1 (which shows passages whole), off by default."""
    share = max(1, max_chars // max(len(passages), 1)) if max_chars else None
    out = ""
    for i, passage in enumerate(passages, 1):
        title, _, text = passage.contents.partition("\n")
        if share is not None and len(text) > share:
            text = text[:share] + "..."
        out += f"Doc {i}(Title: {title}) {text}\n"
    return out


def search_tool(
    backend: SearchBackend, k: int = 3, max_chars: int | None = None, timeout_s: float = 30.0
) -> Tool:
    """A `search(query)` tool over `backend`: the top `k` passages as Search-R1 shows them."""

    def search(query: str) -> str:
        """Search the knowledge source for passages about a query.

        Args:
            query: what to look for, in a few words
        """
        [passages] = backend.search([query], k)
        return format_passages(passages, max_chars)

    return Tool.from_function(search, timeout_s=timeout_s)


class NotRecorded(ToolUnavailable):
    """A replayed run asked what its recording lacks: the episode fails (the agent is
    never shown it)."""


class CachedSearch:
    """Same query, same result: a backend's answers kept in memory and, with `path`, in
    a JSON lines file (one line per query and k) that later runs load, so a run can be
    reproduced without the server (`backend=None`: answers only what was recorded).

    Args:
        backend: what to ask about a query not recorded yet; None replays only.
        path: the recording, read first if it exists, then appended to.
    """

    def __init__(self, backend: SearchBackend | None, path: str | Path | None = None) -> None:
        self.backend = backend
        self.path = Path(path) if path is not None else None
        self._answers: dict[tuple[str, int], list[Passage]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            with self.path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        item = json.loads(line)
                        passages = [Passage(**p) for p in item["passages"]]
                        self._answers[(item["query"], int(item["k"]))] = passages
        if backend is None and self.path is None:
            raise InvalidArgument("CachedSearch needs a backend, a recording (path), or both")

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        missing = list(dict.fromkeys(q for q in queries if (q, k) not in self._answers))
        if missing:
            if self.backend is None:
                raise NotRecorded(
                    f"{len(missing)} queries are not in the recording {self.path} (first: "
                    f"{missing[0][:60]!r}, k={k}); replay the run that recorded it, or give "
                    "CachedSearch a backend to ask"
                )
            answers = self.backend.search(missing, k)
            records = [
                {"query": query, "k": k, "passages": [dataclasses.asdict(p) for p in passages]}
                for query, passages in zip(missing, answers, strict=True)
            ]
            with self._lock:
                for query, passages in zip(missing, answers, strict=True):
                    self._answers[(query, k)] = passages
                if self.path is not None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with self.path.open("a", encoding="utf-8") as out:
                        out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return [list(self._answers[(q, k)]) for q in queries]


@dataclass
class _Request:
    queries: list[str]
    k: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: list[list[Passage]] | None = None
    error: BaseException | None = None
    leader: Any = None  # the request whose thread called the backend


def _fresh(exc: BaseException) -> BaseException:
    """A copy of `exc` for another thread to raise (one exception object raised in many
    threads mixes up their tracebacks); `exc` itself when it cannot be copied."""
    import copy

    try:
        return copy.copy(exc).with_traceback(None)
    except Exception:
        return exc


class BatchedSearch:
    """Concurrent searches sent as one: callers in other threads that ask within
    `window_s` of each other share one `backend.search` call (per k, at most
    `max_batch` queries each), so a retriever server answers one request for many
    envs. Each caller gets its own answers, or the batch's exception.

    The first caller of a batch waits `window_s` for others to join, then calls the
    backend for all; the rest wait for it (no thread of its own: nothing to stop).
    """

    def __init__(self, backend: SearchBackend, window_s: float = 0.002, max_batch: int = 64):
        if window_s < 0 or max_batch < 1:
            raise InvalidArgument(
                f"window_s must be >= 0 and max_batch >= 1; got {window_s}, {max_batch}"
            )
        self.backend, self.window_s, self.max_batch = backend, window_s, max_batch
        self.calls = 0  # backend calls made, for the curious
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._leading = False

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        request = _Request(list(queries), k)
        with self._lock:
            self._pending.append(request)
            lead, self._leading = not self._leading, True
        if lead:
            try:
                time.sleep(self.window_s)  # let concurrent callers join this batch
            finally:  # whatever happens, the next caller can lead
                with self._lock:
                    batch, self._pending, self._leading = self._pending, [], False
            self._answer(batch)
        request.done.wait()
        if request.error is not None:
            if request.error.__traceback__ is not None and request.leader is not request:
                raise _fresh(request.error) from request.error
            raise request.error
        assert request.result is not None
        return request.result

    def _answer(self, batch: list[_Request]) -> None:
        """One backend call per chunk of callers asking with the same k; a chunk's
        failure is its callers' only."""
        leader = batch[0] if batch else None
        try:
            for k in dict.fromkeys(r.k for r in batch):
                group = [r for r in batch if r.k == k]
                while group:
                    chunk, size = [], 0
                    while group and (not chunk or size + len(group[0].queries) <= self.max_batch):
                        size += len(group[0].queries)
                        chunk.append(group.pop(0))
                    self._ask(chunk, k, leader)
        finally:
            for r in batch:
                r.done.set()

    def _ask(self, chunk: list[_Request], k: int, leader: _Request | None) -> None:
        try:
            self.calls += 1
            answers = self.backend.search([q for r in chunk for q in r.queries], k)
            for r in chunk:
                r.result, answers = answers[: len(r.queries)], answers[len(r.queries) :]
        except Exception as exc:  # each caller of the chunk raises it
            for r in chunk:
                r.error, r.leader = exc, leader
