"""WebShop's reward for a purchase: the original `get_reward`, as pure functions.

    info = get_reward(product, goal, price=product.price, options={"color": "black"})
    info.reward, info.r_att, info.r_option, info.r_price, info.r_type

With `n_att` goal attributes and `n_opt` goal options (Yao et al. 2022, section 3.1):

    reward = r_type * (attribute matches + option matches + [price <= bound])
                    / (n_att + n_opt + 1)

This follows princeton-nlp/WebShop's `web_agent_site/engine/goal.py` (`get_reward`,
`get_type_reward`, `get_attribute_reward`, `get_option_reward`) step by step:

- An attribute matches when one of the product's attributes scores
  `token_set_ratio(product attribute, goal attribute) > 85`, or the goal attribute
  appears in the lowercased title, bullets or description.
- Each goal option matches when some chosen option value scores
  `token_set_ratio(chosen, goal option) > 85`, both after `normalize_color`. Every
  option compares this way (size too), and the product's text never counts: a wrong
  option is never matched by being mentioned somewhere on the page. Goals whose options
  are a mapping (the synthetic goals; human goals whose `instruction_options` is a
  mapping) compare each goal option as the original does,
  as the text of its `(name, value)` pair, so the option's name is one of its words.
- `r_type` is 1, 0.5, 0.1 or 0 from the query match, the category overlap and the title
  overlap: the share of the goal title's nouns (counted with repeats) that the bought
  title also has.
- `token_set_ratio` is the original's: thefuzz 0.19.0 as WebShop pins it, without
  python-Levenshtein (which WebShop does not install), so its ratio is difflib's
  `SequenceMatcher`. `fuzzy` computes the same thing (see there).

Where this departs from the original, and its effect:

- Title nouns: the original tags the titles with spaCy (`en_core_web_sm`) and keeps the
  tokens tagged NOUN or PROPN. A spaCy model is too much for one score here;
  `title_words` keeps a title's alphabetic words (hyphenated words split, as spaCy
  splits them) that are not stopwords. Adjectives and verbs then count too, so a
  same-type product scores a little lower and an other-type one a little higher; only
  the thresholds 0.1 and 0.2 matter, and `docs/webshop.md` gives the measured rate at
  which `r_type` differs.
- `r_option` is 1.0 (the original: absent) when the goal names no options, and
  `r_price` is always a number, so that every component is a number in `info`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from typing import Any

from agentrl.envs.webshop.catalog import Goal, Product

FUZZY_THRESHOLD = 85
#: The original's `normalize_color` list: a value containing one of these is that color.
COLOR_SET = str.split(
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze "
    "brown burgundy camel camo caramel champagne charcoal cheetah chestnut chocolate christmas "
    "coffee cognac copper coral cranberry cream crystal dark denim eggplant elephant espresso "
    "fuchsia gold granite grape graphite grass gray green grey heather indigo ivory ivy khaki "
    "lavender lemon leopard light lilac lime magenta maroon mauve merlot midnight mint mocha "
    "multicolor mushroom mustard natural navy nude olive orange peach pewter pink plum purple "
    "rainbow red rose royal rust sand sapphire seashell silver skull slate steel stone "
    "stonewash sunflower tan taupe teal tiger turquoise violet walnut wheat white wine yellow"
)
# Words no title is about; the rest of a title stands in for spaCy's nouns.
_TITLE_STOPWORDS = frozenset(
    str.split(
        "a an and are as at be but by for from if in into is it its no not of on or our such that "
        "the their then there these they this to was will with your you up all new"
    )
)
_TITLE_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# thefuzz 0.19's preprocessing: characters 128-255 deleted, then every character that is
# not a word character (letters, digits and "_", in Unicode) becomes a space.
_LATIN1 = dict.fromkeys(range(128, 256))
_NON_WORD = re.compile(r"\W", re.UNICODE)


@dataclass(frozen=True)
class RewardInfo:
    """A purchase's reward and its components (the original's verbose `info`)."""

    reward: float
    r_type: float
    r_att: float
    r_option: float
    r_price: float
    query_match: bool
    category_match: bool
    title_score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_color(value: str) -> str:
    """The first color word `value` contains ("black forest" -> "black"), else `value`."""
    for color in COLOR_SET:
        if color in value:
            return color
    return value


def fuzz_process(value: Any) -> str:
    """The original scorer's preprocessing of one side (thefuzz 0.19 `full_process`)."""
    text = str(value).translate(_LATIN1)
    return _NON_WORD.sub(" ", text).lower().strip()


def _ratio(a: str, b: str) -> int:
    """thefuzz 0.19 `ratio` without python-Levenshtein: difflib's ratio, rounded."""
    if a == b:
        return 100
    if not a or not b:
        return 0
    return round(100 * SequenceMatcher(None, a, b).ratio())


@functools.lru_cache(maxsize=1 << 16)  # attribute and option phrases repeat a lot
def fuzzy(a: Any, b: Any) -> int:
    """`thefuzz.fuzz.token_set_ratio(a, b)` as the original reward computes it (0-100).

    Both sides are preprocessed (`fuzz_process`) and split into sets of words; the
    score is the best `_ratio` among (common words, common + a's own words), (common
    words, common + b's own words) and those two against each other, words sorted.

    Why not rapidfuzz, which the rest of agentrl uses: its `token_set_ratio` scores with
    the optimal Indel similarity, difflib's `SequenceMatcher` with greedy longest
    blocks, so the two disagree on some pairs (rapidfuzz also splits at "_" and keeps
    characters 128-255). Argument order matters to difflib: keep the original's.
    """
    left, right = fuzz_process(a), fuzz_process(b)
    if not left or not right:
        return 0
    words_a, words_b = set(left.split()), set(right.split())
    common = " ".join(sorted(words_a & words_b))
    with_a = f"{common} {' '.join(sorted(words_a - words_b))}".strip()
    with_b = f"{common} {' '.join(sorted(words_b - words_a))}".strip()
    return max(_ratio(common, with_a), _ratio(common, with_b), _ratio(with_a, with_b))


def title_words(title: str) -> list[str]:
    """A title's content words, with repeats: the stand-in for the nouns spaCy finds."""
    return [w for w in _TITLE_WORD.findall(title.lower()) if w not in _TITLE_STOPWORDS]


def _in_text(phrase: str, product: Product) -> bool:
    return (
        phrase in product.title.lower()
        or phrase in " ".join(product.bullets).lower()
        or phrase in product.description.lower()
    )


def type_reward(product: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    """(r_type, query_match, category_match, title_score) of buying `product` for `goal`."""
    query_match = product.query == goal.query
    bought_path = {level.strip() for level in product.category_path.split("›")}
    goal_path = {level.strip() for level in goal.category_path.split("›")}
    category_match = len(bought_path & goal_path) >= 2
    desired = title_words(goal.name)
    # The original divides the shared distinct words by the goal's words counted with
    # repeats, and takes 0.2 when the goal title has none.
    shared = set(title_words(product.title)) & set(desired)
    title_score = len(shared) / len(desired) if desired else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def attribute_matches(product: Product, goal_attributes: Iterable[str]) -> int:
    """How many goal attributes the product has (fuzzy) or mentions in its text."""
    matches = 0
    for wanted in goal_attributes:
        has = any(fuzzy(have, wanted) > FUZZY_THRESHOLD for have in product.attributes)
        if has or _in_text(wanted, product):
            matches += 1
    return matches


def goal_option_targets(goal: Goal) -> list[Any]:
    """What each goal option is compared with, as the original builds it.

    Listed options (human goals) are their values. Named options (synthetic goals, and
    any goal whose options are a mapping in the data) are `(name, value)` pairs: the
    original passes `goal_options.items()`, so `normalize_color` finds a color only when
    the name or the value is exactly a color word, and otherwise the scorer reads the
    pair's text.
    """
    if goal.option_names is None:
        return [normalize_color(value) for value in goal.options]
    return [
        _normalize_pair(name, value)
        for name, value in zip(goal.option_names, goal.options, strict=True)
    ]


def _normalize_pair(name: str, value: str) -> str | tuple[str, str]:
    for color in COLOR_SET:
        if color in (name, value):  # membership in the pair: equality, not substring
            return color
    return (name, value)


def option_matches(chosen: Iterable[str], target: Any) -> bool:
    """Whether one goal option (a `goal_option_targets` entry) is matched by a chosen value."""
    return any(fuzzy(normalize_color(value), target) > FUZZY_THRESHOLD for value in chosen)


def get_reward(
    product: Product, goal: Goal, price: float, options: Mapping[str, str]
) -> RewardInfo:
    """The reward of buying `product` at `price` with the chosen `options` for `goal`."""
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    in_budget = price <= goal.price_upper
    n_att = attribute_matches(product, goal.attributes)
    chosen = list(options.values())
    n_opt = sum(option_matches(chosen, target) for target in goal_option_targets(goal))
    total = (n_att + n_opt + in_budget) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardInfo(
        reward=total * r_type,
        r_type=r_type,
        r_att=n_att / len(goal.attributes) if goal.attributes else 1.0,
        r_option=n_opt / len(goal.options) if goal.options else 1.0,
        r_price=float(in_budget),
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
    )
