"""Search backends: BM25 with an on-disk index cache, its fake twin, the search tool."""

from __future__ import annotations

import pytest
from agentrl.tools.search import (
    BM25Search,
    FakeSearch,
    Passage,
    format_passages,
    search_tool,
    split_contents,
)

from agentrl.errors import InvalidArgument

CORPUS = [
    {"id": "ada", "contents": '"Ada Lovelace"\nAda Lovelace wrote the first computer program.'},
    {"id": "babbage", "contents": '"Charles Babbage"\nBabbage designed the Analytical Engine.'},
    {"id": "turing", "contents": '"Alan Turing"\nTuring described a universal machine in 1936.'},
    {"id": "hopper", "contents": '"Grace Hopper"\nHopper wrote the first compiler for a program.'},
]


@pytest.fixture(params=["bm25", "fake"])
def backend(request, tmp_path):
    return BM25Search(CORPUS, cache_dir=tmp_path) if request.param == "bm25" else FakeSearch(CORPUS)


def test_every_backend_answers_each_query_best_first(backend):
    first, second, none = backend.search(
        ["Analytical Engine designer", "first program", "zebra"], k=2
    )
    assert first[0] == Passage("babbage", CORPUS[1]["contents"], first[0].score)
    assert (first[0].title, first[0].text) == (
        "Charles Babbage",
        "Babbage designed the Analytical Engine.",
    )
    assert len(second) == 2 and second[0].score >= second[1].score > 0
    assert {p.id for p in second} <= {"ada", "hopper"}
    assert none == []
    assert backend.search(["Turing"], k=10)[0][0].id == "turing"  # k above the corpus size
    assert second[0].contents.startswith(f'"{second[0].title}"\n')


def test_the_bm25_index_is_built_once_per_corpus(tmp_path):
    built = BM25Search(CORPUS, cache_dir=tmp_path)
    assert not built.loaded_from_cache and built.index_dir.is_dir()
    again = BM25Search(CORPUS, cache_dir=tmp_path, mmap=True)
    assert again.loaded_from_cache and again.index_dir == built.index_dir
    query = ["universal machine"]
    assert again.search(query, 3) == built.search(query, 3)
    other = BM25Search(CORPUS[:3], cache_dir=tmp_path)
    assert other.index_dir != built.index_dir and not other.loaded_from_cache


def test_a_corpus_must_be_documents_with_contents(tmp_path):
    with pytest.raises(InvalidArgument, match="'id' and 'contents'"):
        FakeSearch([{"text": "no contents"}])
    with pytest.raises(InvalidArgument, match="empty"):
        BM25Search([], cache_dir=tmp_path)
    assert split_contents("no title line") == ("", "no title line")


def test_the_search_tool_shows_passages_as_search_r1_does():
    # Search-R1's _passages2string: the first line of contents as it is, a newline each.
    tool = search_tool(FakeSearch(CORPUS), k=2)
    assert tool.name == "search" and tool.parameters["required"] == ["query"]
    assert tool.fn("Babbage engine") == (
        'Doc 1(Title: "Charles Babbage") Babbage designed the Analytical Engine.\n'
    )
    hits = FakeSearch(CORPUS).search(["first program"], 2)[0]
    assert format_passages(hits).count("\n") == 2 and format_passages([]) == ""
    cut = search_tool(FakeSearch(CORPUS), k=2, max_chars=20).fn("Babbage engine")
    assert cut == 'Doc 1(Title: "Charles Babbage") Babbage designed the...\n'  # 20 characters


def test_answers_are_cached_recorded_and_replayed_without_the_backend(tmp_path):
    from agentrl.tools.search import CachedSearch

    recording = tmp_path / "runs" / "search.jsonl"
    live = FakeSearch(CORPUS)
    cached = CachedSearch(live, recording)
    first = cached.search(["first program", "Turing", "first program"], 2)
    again = cached.search(["Turing"], 2)
    assert live.queries == ["first program", "Turing"]  # each (query, k) asked once
    assert again[0] == first[1] and first[0] == first[2]
    assert len(recording.read_text().splitlines()) == 2
    replay = CachedSearch(None, recording)  # no backend: the recording answers
    assert replay.search(["first program", "Turing"], 2) == first[:2]
    from agentrl.tools import ToolUnavailable
    from agentrl.tools.search import NotRecorded

    assert issubclass(NotRecorded, ToolUnavailable)  # the episode fails; the agent never reads it
    with pytest.raises(NotRecorded, match="not in the recording"):
        replay.search(["Babbage"], 2)
    with pytest.raises(InvalidArgument, match="needs a backend"):
        CachedSearch(None)


class Recorder:
    """A backend that records its calls, answering each query with its own text."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def search(self, queries, k):
        self.calls.append((list(queries), k))
        if self.fail_on in queries:
            raise RuntimeError("retriever down")
        return [[Passage(q, f'"{q}"\nabout {q}', float(k))] for q in queries]


def test_concurrent_searches_share_one_backend_call():
    import concurrent.futures
    import threading

    from agentrl.tools.search import BatchedSearch

    backend = Recorder()
    batched = BatchedSearch(backend, window_s=0.5)  # callers meet at a barrier first
    asks = [([f"q{i}"], 3 if i < 6 else 5) for i in range(8)]
    barrier = threading.Barrier(len(asks))

    def ask(a):
        barrier.wait()
        return batched.search(*a)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, asks))
    for (queries, k), answer in zip(asks, answers, strict=True):  # each gets its own
        assert [[p.id for p in ps] for ps in answer] == [queries] and answer[0][0].score == k
    assert len(backend.calls) == 2  # one call per k
    assert sorted(q for qs, _ in backend.calls for q in qs) == sorted(f"q{i}" for i in range(8))
    assert all(len({int(q[1:]) < 6 for q in qs}) == 1 for qs, _ in backend.calls)
    assert batched.search(["alone", "two"], 3)[1][0].id == "two"  # a lone caller too


def test_a_failed_chunk_fails_only_its_callers():
    import concurrent.futures
    import threading

    from agentrl.tools.search import BatchedSearch

    backend = Recorder(fail_on="bad")
    batched = BatchedSearch(backend, window_s=0.5, max_batch=2)
    barrier = threading.Barrier(4)

    def ask(query):
        barrier.wait()
        try:
            return batched.search([query], 3)[0][0].id
        except RuntimeError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        queries = ["a", "bad", "c", "d"]
        results = dict(zip(queries, pool.map(ask, queries), strict=True))
    [failed] = [chunk for chunk, _ in backend.calls if "bad" in chunk]
    for query, result in results.items():  # the failing chunk's callers raise, others answer
        if query in failed:
            assert isinstance(result, RuntimeError) and result is not backend
        else:
            assert result == query
    assert len(backend.calls) == 2 and batched.search(["fine"], 3)[0][0].id == "fine"
    with pytest.raises(InvalidArgument, match="window_s"):
        BatchedSearch(Recorder(), window_s=-1)


def test_bm25_answers_equal_bm25s_retrieve(tmp_path):
    # BM25Search scores and ranks with its own code (bm25s's is slow per query): the
    # same scores as bm25s's retrieve, the same passages above the k-th score, and equal
    # scores in document order (bm25s orders them arbitrarily).
    from agentrl.envs.search.world import generated_world
    from agentrl.tools.search import tokenize

    world = generated_world(num_people=200, seed=3)
    backend = BM25Search(world.corpus, cache_dir=tmp_path)
    index = {doc_id: i for i, (doc_id, _) in enumerate(backend.documents)}
    queries = [q.question for q in world.questions["train"][:300]]
    queries += [doc["contents"][:50] for doc in world.corpus[:100]] + ["born city year"]
    for query in queries:
        words = [w for w in tokenize(query) if w in backend._bm25.vocab_dict]
        ids, scores = backend._bm25.retrieve([words], k=5, show_progress=False, n_threads=1)
        expected = [(int(d), float(s)) for d, s in zip(ids[0], scores[0], strict=True) if s > 0]
        [got] = backend.search([query], 5)
        assert [p.score for p in got] == [s for _, s in expected], query
        last = expected[-1][1]
        assert {index[p.id] for p in got if p.score > last} == {d for d, s in expected if s > last}
        ranked = [(-p.score, index[p.id]) for p in got]
        assert ranked == sorted(ranked)


def test_best_breaks_ties_by_document():
    import numpy as np
    from agentrl.tools.search import best

    scores = np.array([0.0, 2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 3.0], dtype=np.float32)
    assert best(scores, 3) == [(7, 3.0), (1, 2.0), (3, 2.0)]
    assert best(scores, 5) == [(7, 3.0), (1, 2.0), (3, 2.0), (2, 1.0), (4, 1.0)]
    assert best(scores, 20) == [(7, 3.0), (1, 2.0), (3, 2.0), (2, 1.0), (4, 1.0), (5, 1.0)]
    assert best(np.zeros(4), 2) == [] and best(scores, 0) == []
