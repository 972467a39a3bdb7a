"""The HTTP retriever: the server speaks Search-R1's API, the client answers like the
embedded backend, retries a failing server and names one that is not there."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from agentrl.tools.retriever import HTTPSearch, RetrieverUnavailable, create_app, load_corpus
from agentrl.tools.search import BM25Search

from tests.tools.test_search import CORPUS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Flaky:
    """A backend whose first `failures` searches raise (the server answers 500)."""

    def __init__(self, backend, failures):
        self.backend, self.failures, self.calls = backend, failures, 0

    def search(self, queries, k):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("index not loaded yet")
        return self.backend.search(queries, k)


@pytest.fixture
def serve(tmp_path):
    """Start a server for a backend in this process; stopped after the test."""
    import uvicorn

    servers = []

    def start(backend):
        port = free_port()
        config = uvicorn.Config(create_app(backend), host="127.0.0.1", port=port, log_level="error")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health").json() == {"status": "ok"}:
                    return url
            except httpx.TransportError:
                time.sleep(0.02)
        raise RuntimeError("the test server did not start")

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=5)


def test_the_client_answers_as_the_embedded_backend(serve, tmp_path):
    embedded = BM25Search(CORPUS, cache_dir=tmp_path)
    url = serve(embedded)
    queries = ["Analytical Engine designer", "first program", "zebra"]
    with HTTPSearch(url) as remote:
        assert remote.search(queries, 2) == embedded.search(queries, 2)


def test_the_server_speaks_search_r1s_api(serve, tmp_path):
    url = serve(BM25Search(CORPUS, cache_dir=tmp_path))
    batch = httpx.post(
        f"{url}/retrieve", json={"queries": ["Turing"], "topk": 1, "return_scores": True}
    ).json()
    [[hit]] = batch["result"]
    assert hit["document"] == {"id": "turing", "contents": CORPUS[2]["contents"]}
    assert hit["score"] > 0
    single = httpx.post(f"{url}/retrieve", json={"query": "Turing", "topk": 1}).json()
    assert single == {"result": [[{"id": "turing", "contents": CORPUS[2]["contents"]}]]}


def test_a_failing_server_is_retried_and_an_absent_one_is_named(serve, tmp_path):
    flaky = Flaky(BM25Search(CORPUS, cache_dir=tmp_path), failures=2)
    with HTTPSearch(serve(flaky), backoff_s=0.01) as remote:
        assert remote.search(["Turing"], 1)[0][0].id == "turing" and flaky.calls == 3
    absent = f"http://127.0.0.1:{free_port()}"
    with (
        HTTPSearch(absent, retries=1, backoff_s=0.01) as down,
        pytest.raises(RetrieverUnavailable, match="agentrl serve-retriever --corpus"),
    ):
        down.search(["Turing"], 1)


def test_a_corpus_file_in_the_search_r1_format_loads(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in CORPUS) + "\n")
    assert load_corpus(path) == CORPUS
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(Exception, match="bad.jsonl:1: a document needs"):
        load_corpus(tmp_path / "bad.jsonl")


def test_serve_retriever_runs_in_another_process_and_its_loss_is_an_error(tmp_path):
    import os
    import subprocess
    import sys

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in CORPUS) + "\n")
    port = free_port()
    command = [sys.executable, "-m", "agentrl.cli", "serve-retriever", "--corpus", str(corpus)]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**os.environ, "AGENTRL_CACHE": str(tmp_path / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with HTTPSearch(f"http://127.0.0.1:{port}", retries=40, backoff_s=0.25) as remote:
            assert remote.search(["Turing"], 1)[0][0].id == "turing"  # retried until it is up
            embedded = BM25Search(CORPUS, cache_dir=tmp_path / "embedded")
            assert remote.search(["first program"], 2) == embedded.search(["first program"], 2)
            server.terminate()
            server.wait(timeout=30)
            remote.retries, remote.backoff_s = 1, 0.01
            with pytest.raises(RetrieverUnavailable, match="no answer from the retriever"):
                remote.search(["Turing"], 1)
    finally:
        server.kill()
        output = server.communicate(timeout=30)[0].decode()
    assert "4 passages, index built" in output
