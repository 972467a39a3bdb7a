"""A generated encyclopedia and the multi-hop questions asked about it.

    world = generated_world(seed=0)
    world.corpus[0]            # {"id": "p0", "contents": '"Orla Venmar"\\nOrla Venmar (born ...'}
    q = world.questions["test"][0]
    q.question  # "In which country was the author of The Amber Orchard born?"
    q.answers, q.kind          # ("Kelvara",), "bridge"
    q.chain                    # ("The Amber Orchard", "Orla Venmar", "Dunmere"): pages needed

Four kinds of pages, one passage each, in the Search-R1 corpus shape (the title in
quotes on the first line, then the text): people (born in a year, in a city; an
occupation; their books), books (an author, a year), cities (a country, a founding
year) and countries (a capital). Every name is made up from syllables, so nothing
about them is known outside the corpus: a policy that answers without searching is at
chance (half of the two-way comparisons, about one in hundreds elsewhere).

Questions, with the pages they need in order (`chain`):

| kind         | example                                                   | pages |
|--------------|-----------------------------------------------------------|-------|
| `lookup`     | In which city was Orla Venmar born? / Who wrote X?        | 1     |
| `bridge`     | In which city was the author of X born? (2 hops)          | 2     |
| `bridge`     | In which country was the author of X born? (3 hops)       | 3     |
| `comparison` | Who was born first, Orla Venmar or Tam Ruskel?            | 2     |

Splits are disjoint by question. People are drawn into two pools: most are asked
about in train and valid, a seeded sixth (with their books) only in test; test holds
questions about both, so it measures both unseen questions and unseen entities.
Cities and countries are shared by all splits (they are answers and stepping stones).
The same seed always builds the same world.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from agentrl.tools.search import tokenize

from agentrl.errors import InvalidArgument

_ONSETS = tuple(str.split("b br c d dr f g gr h k l m n p r s st t th v w z"))
_VOWELS = tuple(str.split("a e i o u ai ea ou"))
_CODAS = ("", "", "n", "r", "l", "s", "th", "m", "nd", "rk")
_OCCUPATIONS = tuple(
    str.split(
        "painter cartographer chemist composer poet architect astronomer engineer "
        "historian botanist sculptor physician linguist mathematician playwright"
    )
)
_ADJECTIVES = tuple(
    str.split(
        "amber silent hollow copper winter distant crimson quiet golden broken iron "
        "scarlet pale hidden wandering bitter velvet northern sleeping burning"
    )
)
_NOUNS = tuple(
    str.split(
        "orchard lantern harbor meadow compass mirror garden tower river archive "
        "citadel feather voyage ledger kingdom bridge chapel forest island letter"
    )
)
_GENRES = ("novel", "book of poems", "play", "history", "treatise", "travel book")

KINDS = ("lookup", "bridge", "comparison")
#: Share of each question kind in every split (3-hop bridges are part of "bridge").
MIX = {"lookup": 0.35, "bridge2": 0.35, "bridge3": 0.15, "comparison": 0.15}
SPLIT_SIZES = {"valid": 300, "test": 300}


@dataclass(frozen=True)
class Question:
    """A question, its gold answers, and the pages a reader needs, in order."""

    id: str
    question: str
    answers: tuple[str, ...]
    kind: str
    chain: tuple[str, ...]
    """Titles of the pages that lead to the answer, in the order a reader needs them."""


@dataclass(frozen=True)
class World:
    """Pages (a Search-R1 corpus) and the questions of each split."""

    corpus: list[dict[str, str]]
    questions: dict[str, list[Question]]
    held_out: frozenset[str]
    """People (and their books) asked about only in test."""


@dataclass
class _Person:
    name: str
    born: int
    city: str
    occupation: str
    books: list[str]


@dataclass
class _Book:
    title: str
    author: str
    year: int
    genre: str


def generated_world(num_people: int = 600, seed: int = 0) -> World:
    """The world of `num_people` people (with their books, cities and countries);
    built once per (num_people, seed) and shared by every env on it. Valid and test
    hold 300 questions each (fewer below about 500 people: a tenth of the questions)."""
    if isinstance(num_people, bool) or not isinstance(num_people, int) or num_people < 60:
        raise InvalidArgument(
            f"num_people must be an integer of at least 60 (so that every split holds "
            f"questions); got {num_people!r}. The default is 600."
        )
    return _build(num_people, seed)


def _names(rng: np.random.Generator, count: int, syllables: tuple[int, int], taken: set[str]):
    """`count` new capitalised made-up words of the given syllable counts."""
    out: list[str] = []
    while len(out) < count:
        n = int(rng.integers(syllables[0], syllables[1] + 1))
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n)]
        word = ("".join(parts) + rng.choice(_CODAS)).capitalize()
        if len(word) >= 4 and word.lower() not in taken and tokenize(word) == [word.lower()]:
            taken.add(word.lower())
            out.append(word)
    return out


@functools.cache
def _build(num_people: int, seed: int) -> World:
    rng = np.random.default_rng([seed, num_people, 13])
    taken: set[str] = set(_OCCUPATIONS) | set(_ADJECTIVES) | set(_NOUNS)
    countries = _names(rng, max(6, num_people // 60), (2, 3), taken)
    cities = _names(rng, max(20, num_people // 8), (2, 3), taken)
    city_country = {c: countries[i % len(countries)] for i, c in enumerate(cities)}
    founded = {c: int(rng.integers(900, 1750)) for c in cities}
    capital = {
        country: next(c for c in cities if city_country[c] == country) for country in countries
    }
    firsts = _names(rng, num_people, (1, 2), taken)
    lasts = _names(rng, num_people, (2, 3), taken)
    people: dict[str, _Person] = {}
    for first, last in zip(firsts, lasts, strict=True):
        name = f"{first} {last}"
        people[name] = _Person(
            name,
            born=int(rng.integers(1780, 1990)),
            city=str(rng.choice(cities)),
            occupation=str(rng.choice(_OCCUPATIONS)),
            books=[],
        )
    titles: set[str] = set()
    books: dict[str, _Book] = {}
    for person in people.values():
        for _ in range(int(rng.integers(1, 3))):
            while True:
                title = (
                    f"The {rng.choice(_ADJECTIVES).capitalize()} {rng.choice(_NOUNS).capitalize()}"
                )
                if rng.random() < 0.5:  # two-word titles run out: add a made-up place
                    title += f" of {_names(rng, 1, (2, 2), taken)[0]}"
                if title not in titles:
                    break
            titles.add(title)
            year = person.born + int(rng.integers(20, 60))
            books[title] = _Book(title, person.name, year, str(rng.choice(_GENRES)))
            person.books.append(title)

    corpus = _pages(people, books, city_country, founded, capital)
    names = list(people)
    order = rng.permutation(len(names))
    held_out = {names[i] for i in order[: len(names) // 6]}
    pools = {
        "seen": [p for p in names if p not in held_out],
        "held_out": [p for p in names if p in held_out],
    }
    candidates = {
        pool: _questions(rng, [people[p] for p in members], people, books, city_country)
        for pool, members in pools.items()
    }
    questions = _split(rng, candidates)
    return World(corpus, questions, frozenset(held_out))


def _pages(people, books, city_country, founded, capital) -> list[dict[str, str]]:
    corpus: list[dict[str, str]] = []
    for i, p in enumerate(people.values()):
        works = " and ".join(f"{t} ({books[t].year})" for t in p.books)
        text = (
            f"{p.name} (born {p.born} in {p.city}) was a {p.occupation}. "
            f"{p.name.split()[1]} is best known for {works}."
        )
        corpus.append({"id": f"p{i}", "contents": f'"{p.name}"\n{text}'})
    for i, b in enumerate(books.values()):
        text = f"{b.title} is a {b.genre} by {b.author}, first published in {b.year}."
        corpus.append({"id": f"b{i}", "contents": f'"{b.title}"\n{text}'})
    for i, (city, country) in enumerate(city_country.items()):
        text = f"{city} is a city in {country}, founded in {founded[city]}."
        corpus.append({"id": f"c{i}", "contents": f'"{city}"\n{text}'})
    for i, (country, city) in enumerate(capital.items()):
        text = f"{country} is a country. Its capital is {city}."
        corpus.append({"id": f"n{i}", "contents": f'"{country}"\n{text}'})
    return corpus


def _questions(rng, members, people, books, city_country) -> dict[str, list[tuple]]:
    """Every question about `members` (and their books), by kind of the mix:
    (text, answer, kind, chain)."""
    out: dict[str, list[tuple]] = {kind: [] for kind in MIX}
    for p in members:
        country = city_country[p.city]
        out["lookup"].append((f"In which city was {p.name} born?", p.city, "lookup", (p.name,)))
        out["lookup"].append((f"In what year was {p.name} born?", str(p.born), "lookup", (p.name,)))
        out["bridge2"].append(
            (f"In which country was {p.name} born?", country, "bridge", (p.name, p.city))
        )
        for title in p.books:
            b = books[title]
            out["lookup"].append((f"Who wrote {title}?", p.name, "lookup", (title,)))
            out["lookup"].append(
                (f"In what year was {title} first published?", str(b.year), "lookup", (title,))
            )
            chain = (title, p.name)
            out["bridge2"].append(
                (f"In which city was the author of {title} born?", p.city, "bridge", chain)
            )
            out["bridge2"].append(
                (f"In what year was the author of {title} born?", str(p.born), "bridge", chain)
            )
            out["bridge3"].append(
                (
                    f"In which country was the author of {title} born?",
                    country,
                    "bridge",
                    (*chain, p.city),
                )
            )
    pairs = max(len(members), 1) * 2
    for _ in range(pairs):
        a, b = (members[i] for i in rng.choice(len(members), size=2, replace=False))
        if a.born != b.born:
            first = a if a.born < b.born else b
            out["comparison"].append(
                (
                    f"Who was born first, {a.name} or {b.name}?",
                    first.name,
                    "comparison",
                    (a.name, b.name),
                )
            )
        ta = a.books[int(rng.integers(len(a.books)))]
        tb = b.books[int(rng.integers(len(b.books)))]
        ya, yb = books[ta].year, books[tb].year
        if ya != yb:
            out["comparison"].append(
                (
                    f"Which was published first, {ta} or {tb}?",
                    ta if ya < yb else tb,
                    "comparison",
                    (ta, tb),
                )
            )
    for kind, items in out.items():  # distinct questions, in a seeded order
        unique = list({_key(item): item for item in items}.values())
        out[kind] = [unique[i] for i in rng.permutation(len(unique))]
    return out


def _key(item: tuple) -> object:
    """What makes a question distinct: its text, or for a comparison its template and
    the pair, so that "X or Y?" and "Y or X?" never land in two splits."""
    text, _, kind, chain = item
    return (text.split(",")[0], frozenset(chain)) if kind == "comparison" else text


def _take(pool: dict[str, list[tuple]], count: int) -> list[tuple]:
    """`count` questions of the mix from `pool` (removed from it)."""
    taken: list[tuple] = []
    for kind, share in MIX.items():
        n = min(round(count * share), len(pool[kind]))
        taken += pool[kind][:n]
        del pool[kind][:n]
    return taken


def _split(rng, candidates: dict[str, dict[str, list[tuple]]]) -> dict[str, list[Question]]:
    seen, held = candidates["seen"], candidates["held_out"]
    # a tenth of the seen questions each for valid and test, at most SPLIT_SIZES
    available = sum(len(items) for items in seen.values())
    test_size = min(SPLIT_SIZES["test"], available // 10)
    valid_size = min(SPLIT_SIZES["valid"], available // 10)
    from_held = _take(held, test_size // 2)
    splits = {
        "test": from_held + _take(seen, test_size - len(from_held)),
        "valid": _take(seen, valid_size),
    }
    # train: the rest of the seen pool, in the mix (the scarcest kind sets the size)
    total = min(int(len(seen[kind]) / share) for kind, share in MIX.items())
    splits["train"] = _take(seen, total)
    out: dict[str, list[Question]] = {}
    for split in ("train", "valid", "test"):
        items = splits[split]
        items = [items[i] for i in rng.permutation(len(items))]
        out[split] = [
            Question(f"{split}-{i}", text, (answer,), kind, chain)
            for i, (text, answer, kind, chain) in enumerate(items)
        ]
    return out
