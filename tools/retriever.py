"""A retriever over HTTP, speaking Search-R1's API: a server for any search backend, and
the client backend that calls it (or any existing Search-R1 / FlashRAG retriever).

    agentrl serve-retriever --corpus corpus.jsonl --port 8000     # BM25, on 127.0.0.1
    backend = HTTPSearch("http://127.0.0.1:8000")
    backend.search(["who wrote the first program"], k=3)           # [[Passage, ...]]

The API (Search-R1's `retrieval_server.py`): `POST /retrieve` with
`{"queries": [...], "topk": k, "return_scores": bool}`, or the single-query
`{"query": "...", "topk": k}` that SkyRL and verl-agent send, answered with
`{"result": [[{"document": {"id", "contents"}, "score": s}, ...], ...]}` (without
scores: `{"result": [[{"id", "contents"}, ...], ...]}`); `GET /health` says the server
is up. The client retries a 5xx answer or a dropped connection with exponential backoff,
gives up after `timeout_s` per attempt, and a server that is not there is an
`RetrieverUnavailable` naming the URL and how to start one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentrl.tools.base import ToolUnavailable
from agentrl.tools.search import Passage, SearchBackend
from pydantic import BaseModel

from agentrl.errors import InvalidArgument


class RetrieverUnavailable(ToolUnavailable):
    """No retriever answered at the URL (or it kept failing): the search tool raises it
    through the toolbox, so the episode is recorded as failed."""


def load_corpus(path: str | Path) -> list[dict[str, Any]]:
    """A Search-R1 / FlashRAG corpus: JSON lines with `id` and `contents`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(
            f"no corpus file at {path}; expected JSON lines with 'id' and 'contents'"
        )
    documents = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except ValueError as exc:
                raise InvalidArgument(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(document, dict) or "contents" not in document:
                raise InvalidArgument(f"{path}:{number}: a document needs 'id' and 'contents'")
            documents.append(document)
    return documents


class RetrieveRequest(BaseModel):
    """A `/retrieve` body: several `queries`, or one `query`."""

    queries: list[str] | None = None
    query: str | None = None
    topk: int | None = None
    return_scores: bool = False


def create_app(backend: SearchBackend, default_topk: int = 3) -> Any:
    """A FastAPI app serving `backend` with the Search-R1 API."""
    from fastapi import FastAPI

    app = FastAPI(title="agentrl retriever")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/retrieve")
    def retrieve(request: RetrieveRequest) -> dict[str, Any]:
        queries = request.queries if request.queries is not None else [request.query or ""]
        results = backend.search(queries, request.topk or default_topk)
        if request.return_scores:
            return {
                "result": [
                    [{"document": _document(p), "score": p.score} for p in passages]
                    for passages in results
                ]
            }
        return {"result": [[_document(p) for p in passages] for passages in results]}

    return app


def _document(passage: Passage) -> dict[str, str]:
    return {"id": passage.id, "contents": passage.contents}


class HTTPSearch:
    """A search backend that asks a retriever server (Search-R1's API) over HTTP.

    Args:
        url: the server, e.g. http://127.0.0.1:8000 (`/retrieve` is added).
        timeout_s: longest wait for one attempt.
        retries: further attempts after a 5xx answer or a dropped connection.
        backoff_s: wait before the first retry, doubled for each next one.
    """

    def __init__(
        self, url: str, timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.25
    ) -> None:
        import httpx

        self.url = url.rstrip("/").removesuffix("/retrieve")
        self.retries, self.backoff_s = retries, backoff_s
        self._client = httpx.Client(timeout=timeout_s)

    def search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        body = {"queries": list(queries), "topk": k, "return_scores": True}
        answer = self._post(body)
        result = answer.get("result")
        if not isinstance(result, list) or len(result) != len(queries):
            raise RetrieverUnavailable(
                f"{self.url}/retrieve answered without one result list per query: "
                f"{str(answer)[:200]}"
            )
        return [[_passage(item) for item in items] for items in result]

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        wait, problem = self.backoff_s, ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(wait)
                wait *= 2
            try:
                response = self._client.post(f"{self.url}/retrieve", json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise RetrieverUnavailable(
                    f"{self.url}/retrieve refused the request (HTTP {response.status_code}: "
                    f"{response.text[:200]})"
                )
            return response.json()
        raise RetrieverUnavailable(
            f"no answer from the retriever at {self.url} after {self.retries + 1} attempts "
            f"({problem}). Start one with `agentrl serve-retriever --corpus CORPUS.jsonl`, "
            "or check the URL."
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _passage(item: dict[str, Any]) -> Passage:
    document = item.get("document", item)  # with scores, or without
    return Passage(
        str(document.get("id", "")), str(document["contents"]), float(item.get("score", 0.0))
    )
