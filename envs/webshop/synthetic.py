"""A generated WebShop catalog: products in five categories and instructions to buy them.

    shop = synthetic_shop(num_products=3000, seed=0)    # built once per (size, seed)
    shop.products[0].title   # "Veronix Clip-In Hair Extension, Natural Looking and Silky"
    shop.goals["test"][0].instruction
    # "i need a clip-in hair extension which is natural looking in blonde, and price lower
    #  than 40.00 dollars"

Products are drawn round-robin over the product types of `vocab.py`, each with a brand,
a variant, 2-3 attributes (from its type's and its category's), 2-5 values per option
and a log-uniform price. Every product gets one instruction, written from its variant
and type, 1-3 of its attributes, a value of (nearly always) each of its options, and a
price bound above its price (the original's rule: `catalog.price_upper_bound`).

Splits are by product: a seeded tenth of the products give the test instructions,
another tenth the valid ones, the rest train. So valid and test hold products that no
train instruction asks for, and they also use phrasings (`HELD_OUT_TEMPLATES`) that
train never does: both are held-out generalisation.
"""

from __future__ import annotations

import functools
import random

from agentrl.envs.webshop import vocab
from agentrl.envs.webshop.catalog import (
    Goal,
    Product,
    Shop,
    price_upper_bound,
)
from agentrl.envs.webshop.reward import normalize_color, option_matches

from agentrl.errors import InvalidArgument

DEFAULT_NUM_PRODUCTS = 3000
MIN_NUM_PRODUCTS = 30  # a tenth of the products must hold at least 3 test tasks
_ASIN_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_SMALL_WORDS = frozenset(str.split("a an and for in of on or the to with"))
_ACRONYMS = frozenset(str.split("hdmi usb tv led rgb sd sdxc uv gan 4k 8k u3 v30 gmo usda"))


def synthetic_shop(num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = 0) -> Shop:
    """The generated shop of `num_products` products; the same arguments, the same shop.

    Built once per (num_products, seed) and cached: every env on it shares the shop.
    """
    check_num_products(num_products)
    return _build(num_products, seed)


def check_num_products(num_products: int) -> None:
    """Refuse a catalog size `synthetic_shop` cannot build (before anything is built)."""
    if isinstance(num_products, bool) or not isinstance(num_products, int):
        raise InvalidArgument(f"num_products must be an integer; got {num_products!r}.")
    if num_products < MIN_NUM_PRODUCTS:
        raise InvalidArgument(
            f"num_products must be at least {MIN_NUM_PRODUCTS} so that every split holds "
            f"tasks; got {num_products}. The default is {DEFAULT_NUM_PRODUCTS}."
        )


@functools.cache
def _build(num_products: int, seed: int) -> Shop:
    rng = random.Random(f"webshop-catalog-{seed}")
    brands = [head.title() + tail for head in vocab.BRAND_HEADS for tail in vocab.BRAND_TAILS]
    types = list(vocab.PRODUCT_TYPES)
    asins: set[str] = set()
    made = []  # (product, its type, what it is in words)
    for i in range(num_products):
        if i % len(types) == 0:
            rng.shuffle(types)  # balanced types, in no fixed order
        kind = types[i % len(types)]
        made.append((*_product(kind, rng.choice(brands), _asin(rng, asins), rng), kind))

    order = list(range(num_products))
    rng.shuffle(order)
    held_out = num_products // 10
    split_of = {}
    for rank, index in enumerate(order):
        split_of[index] = "test" if rank < held_out else "valid" if rank < 2 * held_out else "train"
    goals: dict[str, list[Goal]] = {"train": [], "valid": [], "test": []}
    for index, (product, item, kind) in enumerate(made):
        split = split_of[index]
        goals[split].append(_goal(product, item, kind, split, rng))
    return Shop(
        products=tuple(product for product, _, _ in made),
        goals={split: tuple(g) for split, g in goals.items()},
        source=f"synthetic(num_products={num_products}, seed={seed})",
    )


def title_case(text: str) -> str:
    """Title Case that keeps small words lowercase and acronyms upper: "Hair Clip for HDMI"."""

    def word(w: str, first: bool) -> str:
        if w in _ACRONYMS:
            return w.upper()
        if w in _SMALL_WORDS and not first:
            return w
        return "-".join(part[:1].upper() + part[1:] for part in w.split("-"))

    return " ".join(word(w, k == 0) for k, w in enumerate(text.split()))


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choice(_ASIN_CHARS) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _join(phrases: list[str]) -> str:
    """Phrases as a list in words: a; a and b; a, b and c."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _product(
    kind: vocab.ProductType, brand: str, asin: str, rng: random.Random
) -> tuple[Product, str]:
    """A product of `kind`, and what it is in words ("clip-in hair extension")."""
    variant = rng.choice(kind.variants)
    pool = tuple(dict.fromkeys(kind.attributes + vocab.CATEGORY_ATTRIBUTES[kind.category]))
    attributes = rng.sample(pool, rng.randint(2, 3))
    audience = ""
    if " › women › " in kind.path:
        audience = " for Women"
    elif " › men › " in kind.path:
        audience = " for Men"
    title = (
        f"{brand} {title_case(variant)} {title_case(kind.noun)}{audience}, "
        f"{title_case(_join(attributes[:2]))}"
    )
    lines = rng.sample(vocab.CATEGORY_LINES[kind.category], 3)
    description = (
        f"The {brand} {variant} {kind.noun} is {_join(attributes)}. {lines[0]}. {lines[1]}."
    )
    bullets = (
        *(
            f"{a.upper()}: this {variant} {kind.noun} is {a}, made to last through daily use"
            for a in attributes
        ),
        lines[2],
    )
    text = " ".join((title, description, *bullets)).lower()
    options = {
        name: _pick_values(vocab.OPTION_POOLS[pool], text, rng) for name, pool in kind.options
    }
    low, high = kind.price
    # Log-uniform: many cheap products and a long tail of dear ones, as in real shops.
    price = int(low * (2 * high / low) ** rng.random()) + rng.choice((0.99, 0.95, 0.49, 0.0))
    product = Product(
        asin=asin,
        title=title,
        description=description,
        bullets=bullets,
        category=kind.category,
        query=kind.query,
        category_path=kind.path,
        attributes=tuple(attributes),
        options=options,
        price=price,
        price_text=f"${price:.2f}",
    )
    return product, f"{variant} {kind.noun}{audience.lower()}"


def _pick_values(pool: tuple[str, ...], text: str, rng: random.Random) -> tuple[str, ...]:
    """2-5 values of one option that the reward tells apart.

    A value is skipped when the reward would count it as another chosen value, or the
    other way round (fuzzy match after `normalize_color`: "18 inch" and "14 inch" score
    86), or when the product's text contains it. Then buying a wrong value really costs
    reward.
    """
    wanted = rng.randint(2, 5)
    chosen: list[str] = []
    for value in rng.sample(pool, len(pool)):
        if value in text or normalize_color(value) in text:
            continue
        if any(
            option_matches([value], normalize_color(c))
            or option_matches([c], normalize_color(value))
            for c in chosen
        ):
            continue
        chosen.append(value)
        if len(chosen) == wanted:
            break
    return tuple(chosen)


def _goal(
    product: Product, what: str, kind: vocab.ProductType, split: str, rng: random.Random
) -> Goal:
    attributes = rng.sample(
        product.attributes, min(rng.choice((1, 2, 2, 3, 3)), len(product.attributes))
    )
    names = [n for n in product.options if product.options[n]]
    asked = [n for n in names if rng.random() < 0.95] or names[:1]
    values = [rng.choice(product.options[n]) for n in asked]
    price_upper = price_upper_bound(product.price, rng)
    if kind.noun.endswith("s") and not kind.noun.endswith("ss"):  # "socks", "jeans"
        item = f"a {'pack' if kind.category == 'grocery' else 'pair'} of {what}"
    else:
        item = f"{'an' if what[0] in 'aeiou' else 'a'} {what}"
    phrases = [
        rng.choice(vocab.OPTION_PHRASES[n]).format(v=v) for n, v in zip(asked, values, strict=True)
    ]
    # The second phrase loses its leading comma: "in beige color and size: large".
    opts = "".join(phrases[:1] + [" and " + p.lstrip(", ") for p in phrases[1:]])
    templates = vocab.SHARED_TEMPLATES
    if split != "train" and rng.random() < 0.5:
        templates = vocab.HELD_OUT_TEMPLATES
    instruction = rng.choice(templates).format(
        item=item, atts=_join(attributes), opts=opts, price=f"{price_upper:.2f}"
    )
    return Goal.for_product(
        product,
        task_id=f"webshop-{product.asin}",
        instruction=instruction,
        attributes=tuple(attributes),
        options=tuple(values),
        price_upper=price_upper,
    )
