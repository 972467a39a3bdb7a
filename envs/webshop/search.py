"""BM25 search over the shop's products, with `bm25s`.

    engine = SearchEngine(["red running shoes ...", "wireless earbuds ...", ...])
    engine.search("red shoes")        # document indices, best first, at most 50

The original WebShop searches with Lucene (pyserini) over each product's text. Lucene's
English analyzer drops 33 stopwords and stems words; `tokenize` drops the same
stopwords and strips plural endings (a light stand-in for the Porter stemmer, so that
"extensions" finds "extension"). Results are ordered by score, ties by catalog order,
and documents that share no word with the query are left out.

An engine is built once per catalog and shared by every env on it (`Shop` holds it);
answers are cached per query, since agents and baselines repeat queries often.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

#: How many results a search returns, as the original (`SEARCH_RETURN_N`).
SEARCH_RETURN_N = 50
#: Results per page, as the original (`PRODUCT_WINDOW`).
PAGE_SIZE = 10
_CACHE_SIZE = 4096  # queries; a cached answer is a tuple of at most 50 ints
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_STOPWORDS = frozenset(STOPWORDS_EN)


def stem(word: str) -> str:
    """Strip an English plural ending: "batteries" -> "battery", "shoes" -> "shoe"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase words of `text`, stopwords dropped and plurals stemmed."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class SearchEngine:
    """A BM25 index over documents, answering queries with document indices."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.size = len(documents)
        self._bm25 = bm25s.BM25()
        self._bm25.index([tokenize(d) for d in documents], show_progress=False)
        # lru_cache is thread-safe, and envs may run in a thread pool.
        self._cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._search)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> tuple[int, ...]:
        """Indices of the `k` best documents for `query`, best first."""
        return self._cached(query, k)

    def clear_cache(self) -> None:
        """Forget cached answers (benchmarks time searches from a cold cache)."""
        self._cached.cache_clear()

    def _search(self, query: str, k: int) -> tuple[int, ...]:
        vocab = self._bm25.vocab_dict
        tokens = [t for t in tokenize(query) if t in vocab]
        if not tokens:
            return ()
        scores = self._bm25.get_scores(tokens)  # [N]
        top = np.arange(self.size) if self.size <= k else np.argpartition(-scores, k)[:k]
        # Best score first, catalog order among ties, so that answers are deterministic.
        top = top[np.lexsort((top, -scores[top]))]
        return tuple(int(i) for i in top if scores[i] > 0)
