"""The shop's data model: products, goals (tasks) and the `Shop` that holds them.

A `Shop` is built once per source and shared: by `synthetic.synthetic_shop` (a generated
catalog) or `data.load_shop` (the original WebShop files). It holds the products, the
goals of each split and the search engine over the products. Shops, products and goals
are read-only, and deep copies share them, so that `env.fork()` copies only the
episode's state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl.envs.webshop.search import SearchEngine

#: Price bounds of instructions are multiples of 10 dollars, as in the original.
PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))
#: The bound when a product costs too much for `PRICE_STEPS` (the original's 1000000).
NO_PRICE_BOUND = 1_000_000.0
# Instruction words that say how to shop, not what to buy: left out of built queries.
_FILLER = frozenset(
    str.split(
        "i i'm i'd am need want to buy find me get please for that which is it "
        "should be has have a an the and with in of price lower than under below dollars my "
        "budget keep shopping purchase priced like that's"
    )
)
_PRICE_CLAUSE = re.compile(
    r",?\s*(and )?(price lower than|priced below|keep it under|my budget is)[^,.;]*?"
    r"\d+(\.\d+)? dollars\.?"
)


class _Shared:
    """Read-only records: a deep copy returns the object itself (forks share them)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


@dataclass(frozen=True, eq=False)
class Product(_Shared):
    """One product, with the fields of the original `items_shuffle` records."""

    asin: str
    """Amazon-style id, e.g. "B07ZKDKXXW"; what `click[...]` on a results page names."""
    title: str
    description: str
    bullets: tuple[str, ...]
    """Bullet points, shown on the Features page."""
    category: str
    """Top-level category, e.g. "beauty"."""
    query: str
    """The search query the product was found with (used by the type reward)."""
    category_path: str
    """Category path, levels joined by " › " (used by the type reward)."""
    attributes: tuple[str, ...]
    """Attribute phrases, e.g. ("long lasting", "easy to use")."""
    options: Mapping[str, tuple[str, ...]]
    """Option name -> values, lowercase, e.g. {"color": ("black", "white")}."""
    price: float
    """What buying costs, compared with the goal's price bound."""
    price_text: str
    """The price as shown, e.g. "$12.99" or "$10.0 to $20.0"."""

    def document(self) -> str:
        """The text search indexes: title, description, bullets and attributes."""
        return " ".join([self.title, self.description, *self.bullets, ", ".join(self.attributes)])


@dataclass(frozen=True, eq=False)
class Goal(_Shared):
    """One task: buy a product that fits an instruction. Fields follow the original goals."""

    task_id: str
    asin: str
    """The product the instruction was written for (one of possibly several that fit)."""
    instruction: str
    attributes: tuple[str, ...]
    """Attributes the instruction asks for."""
    options: tuple[str, ...]
    """Option values the instruction asks for, e.g. ("black", "x-large")."""
    price_upper: float
    """The price bound ("price lower than 40.00 dollars"); NO_PRICE_BOUND when none."""
    query: str
    """The target product's search query (type reward)."""
    category_path: str
    """The target product's category path (type reward)."""
    name: str
    """The target product's title (type reward)."""
    option_names: tuple[str, ...] | None = None
    """The option name of each of `options` when the goal names them (the original's
    synthetic goals, whose options are a mapping); None for a plain list of values (the
    human goals). The reward compares named options as the original does."""

    @classmethod
    def for_product(cls, product: Product, **fields: Any) -> Goal:
        """A goal whose target is `product`: its asin, query, category path and title."""
        return cls(
            asin=product.asin,
            query=product.query,
            category_path=product.category_path,
            name=product.title,
            **fields,
        )


@dataclass(eq=False)
class Shop(_Shared):
    """Products, goals per split and the search engine: one per data source, shared."""

    products: tuple[Product, ...]
    goals: Mapping[str, tuple[Goal, ...]]
    source: str
    """Where the shop comes from: "synthetic(num_products=3000, seed=0)" or a directory."""
    by_asin: dict[str, Product] = field(init=False)
    engine: SearchEngine = field(init=False)

    def __post_init__(self) -> None:
        self.by_asin = {p.asin: p for p in self.products}
        self.engine = SearchEngine([p.document() for p in self.products])

    def search(self, query: str) -> tuple[str, ...]:
        """Asins of the best products for `query`, best first (at most 50)."""
        return tuple(self.products[i].asin for i in self.engine.search(query))


def price_upper_bound(price: float, rng: random.Random) -> float:
    """The original's bound: the larger of two of the four multiples of 10 above `price`."""
    above = [p for p in PRICE_STEPS if p > price][:4]
    if len(above) < 2:
        return NO_PRICE_BOUND
    return max(rng.sample(above, 2))


def price_clause(price_upper: float) -> str:
    """The original's price wording appended to instructions, or "" without a bound."""
    if price_upper >= NO_PRICE_BOUND:
        return ""
    return f", and price lower than {price_upper:.2f} dollars"


def instruction_queries(instruction: str) -> list[str]:
    """One or two search queries built from an instruction (the search page's actions).

    The instruction without its price clause, and its content words alone.
    """
    text = _PRICE_CLAUSE.sub("", instruction.lower()).strip(" .,")
    words = [w.strip(",.:;") for w in text.split()]
    # "looking for", "look to": shopping talk; "natural looking": an attribute.
    kept = [
        w
        for w, after in zip(words, [*words[1:], ""], strict=True)
        if w and w not in _FILLER and not (w in ("look", "looking") and after in ("for", "to"))
    ]
    short = " ".join(kept)
    queries = [text] if text else []
    if short and short != text:
        queries.append(short)
    return queries or ["products"]


def split_goals(
    goals: Sequence[Goal], seed: int = 233, test: int = 500, valid: int = 1000
) -> dict[str, tuple[Goal, ...]]:
    """The original's goal split: a seeded shuffle, then test first, valid, train the rest.

    The original shuffles with `random.seed(233)` and evaluates on goals [0, 500), with
    [500, 1500) for validation. Small goal sets keep a tenth each for test and valid.
    """
    shuffled = list(goals)
    random.Random(seed).shuffle(shuffled)
    n_test = min(test, max(1, len(shuffled) // 10))
    n_valid = min(valid, max(1, len(shuffled) // 10))
    return {
        "test": tuple(shuffled[:n_test]),
        "valid": tuple(shuffled[n_test : n_test + n_valid]),
        "train": tuple(shuffled[n_test + n_valid :]),
    }
