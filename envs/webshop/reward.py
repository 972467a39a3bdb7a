"""WebShop's reward for a purchase: the original `get_reward`, as pure functions.

    info = get_reward(product, goal, price=product.price, options={"color": "black"})
    info.reward, info.r_att, info.r_option, info.r_price, info.r_type

With `n_att` goal attributes and `n_opt` goal options (Yao et al. 2022, section 3.1):

    reward = r_type * (attribute matches + option matches + [price <= bound])
                    / (n_att + n_opt + 1)

- An attribute matches when one of the product's attributes has a fuzzy
  `token_set_ratio > 85` with it, or it appears in the title, bullets or description.
- Each chosen option matches when, after `normalize_color`, its value equals a goal
  option (options named "size") or fuzzy-matches one (other options), or appears in
  the product's text. The count is capped at `n_opt` (see below).
- `r_type` is 1, 0.5, 0.1 or 0 from the query match, the category overlap and the title
  word overlap between the bought product and the goal's product.

Where this departs from the original, and why:

- Title overlap: the original counts the nouns spaCy (`en_core_web_lg`) finds in both
  titles. A 600 MB model for one score is too much here; `title_words` keeps a title's
  alphabetic words that are not stopwords. Adjectives then count too, so a same-type
  product scores a little lower and an other-type one a little higher; the thresholds
  (0.1, 0.2) are low enough that this rarely changes `r_type`.
- Option matches are capped at the number of goal options: the original counts per
  chosen option, so extra options found in the product's text could push the reward
  above 1.
- `r_option` is 1.0 (not None) when the goal names no options, so that every component
  is a number in `info`.
- thefuzz (the original) preprocesses both strings (lowercase, punctuation to spaces)
  and rounds the score to an integer; `fuzzy` does the same with rapidfuzz.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agentrl.envs.webshop.catalog import Goal, Product
from rapidfuzz import fuzz, utils

#: Options compared exactly rather than fuzzily, as in the original.
EXACT_MATCH_OPTS = ("size",)
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
_TITLE_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")


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


def fuzzy(a: str, b: str) -> int:
    """thefuzz's `token_set_ratio`: processed strings, score rounded to an integer."""
    return round(fuzz.token_set_ratio(a, b, processor=utils.default_process))


def title_words(title: str) -> set[str]:
    """A title's content words: the stand-in for the nouns spaCy finds."""
    return {w for w in _TITLE_WORD.findall(title.lower()) if w not in _TITLE_STOPWORDS}


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
    # 0.2 without words to compare is the original's choice.
    title_score = len(title_words(product.title) & desired) / len(desired) if desired else 0.2
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
        if has or _in_text(wanted.lower(), product):
            matches += 1
    return matches


def option_matches(name: str, value: str, goal_options: Iterable[str]) -> bool:
    """Whether one chosen option (name, value) matches a goal option value."""
    value = normalize_color(value.lower())
    wanted = [normalize_color(o.lower()) for o in goal_options]
    if name.lower() in EXACT_MATCH_OPTS:
        return value in wanted
    return any(fuzzy(w, value) > FUZZY_THRESHOLD for w in wanted)


def get_reward(
    product: Product, goal: Goal, price: float, options: Mapping[str, str]
) -> RewardInfo:
    """The reward of buying `product` at `price` with the chosen `options` for `goal`."""
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    in_budget = price <= goal.price_upper
    n_att = attribute_matches(product, goal.attributes)
    n_opt = 0
    for name, value in options.items():
        if option_matches(name, value, goal.options) or _in_text(
            normalize_color(value.lower()), product
        ):
            n_opt += 1
    n_opt = min(n_opt, len(goal.options))
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
