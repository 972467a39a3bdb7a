"""The original WebShop data: products, attributes and human instructions from JSON files.

    shop = load_shop("~/webshop/data")          # built once per (directory, size, seed)
    env = agentrl.make("webshop", data_dir="~/webshop/data", split="test")

The directory holds the files of princeton-nlp/WebShop's `setup.sh` (either the 1000
product files or the full ones; without a suffix wins when both are there):

- `items_shuffle*.json`: a list of products, each with `asin`, `name`,
  `full_description`, `small_description` (bullet strings), `pricing` ("$12.99" or
  "$10.00 - $20.00"), `customization_options` (option name -> [{"value": ...}]),
  `category`, `query` and `product_category` ("a › b › c");
- `items_ins_v2*.json`: asin -> {"attributes": [...], ...}, the products' attributes;
- `items_human_ins.json`: asin -> [{"instruction", "instruction_attributes",
  "instruction_options", ...}], the instructions people wrote (the human goals).

The tasks are the human goals (`goals="human"`, the default) or the synthetic ones
(`goals="synthetic"`), as the original text env's `human_goals` flag chooses:

- human (`goal.get_human_goals`): one goal per instruction that has attributes, its
  options the instruction's option values;
- synthetic (`goal.get_synthetic_goals`): for every product whose `items_ins_v2` entry
  has an `instruction`, one goal per combination of its option values (option names
  sorted), the instruction followed by " with color: black, and size: large"; the
  options are named, and the reward compares them as the original does
  (`reward.goal_option_targets`).

Loading follows the original `engine.load_products`: asins that are "nan" or longer
than 10 characters are skipped, as are repeats; option values are lowercased with "/"
written " | "; a price range is bought at a price drawn uniformly inside it; goals get
the original's price bound and ", and price lower than X dollars". Splits are the
original's: goals shuffled with seed 233, test first (500), then valid (1000), train
the rest (`catalog.split_goals`; under 10,000 goals, a tenth each for test and valid).

Departures: the price draws use a seeded generator (the original's were unseeded, so
its prices and bounds changed between runs); products missing from the attributes
file get no attributes (the original's placeholder "DUMMY_ATTR" never matches anyway);
for synthetic goals, a product missing from the attributes file, or whose instruction
has no attributes, gets no goal (the original stops with a KeyError or an assertion).
Reviews and images are not loaded: text mode has no use for images, and the item page
has no Reviews button. The search index is built in memory on loading: seconds for the
1000-product files, minutes for the full 1.18M products (`num_products` keeps fewer).
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from agentrl.envs.webshop.catalog import (
    Goal,
    Product,
    Shop,
    price_clause,
    price_upper_bound,
    split_goals,
)

from agentrl.errors import InvalidArgument

#: The price of a product without pricing, as in the original.
DEFAULT_PRICE = 100.0


GOAL_KINDS = ("human", "synthetic")


def load_shop(
    data_dir: str | Path, num_products: int | None = None, seed: int = 0, goals: str = "human"
) -> Shop:
    """The shop of the WebShop files in `data_dir`, its first `num_products` products,
    with the human or the synthetic goals.

    Cached per (directory, num_products, seed, goals): every env on the same files shares it.
    """
    _check_arguments(data_dir, num_products, goals)
    directory = Path(data_dir).expanduser().resolve()
    _data_files(directory, goals)  # missing or ambiguous files are reported now
    return _load_shop(str(directory), num_products, seed, goals)


def _check_arguments(data_dir: str | Path, num_products: int | None, goals: str) -> None:
    if goals not in GOAL_KINDS:
        raise InvalidArgument(
            f"goals must be 'human' (the instructions people wrote) or 'synthetic' (one per "
            f"product option combination, from items_ins_v2); got {goals!r}."
        )
    if num_products is not None and (
        isinstance(num_products, bool) or not isinstance(num_products, int) or num_products < 1
    ):
        raise InvalidArgument(
            f"num_products must be a positive integer or None (all products); got {num_products!r}."
        )
    directory = Path(data_dir).expanduser().resolve()
    if not directory.is_dir():
        raise InvalidArgument(
            f"data_dir must be a directory holding the WebShop JSON files; {str(data_dir)!r} "
            "is not one. Download them with princeton-nlp/WebShop's setup.sh, or leave "
            "data_dir unset for the generated catalog."
        )


def check_data_dir(
    data_dir: str | Path, num_products: int | None = None, goals: str = "human"
) -> None:
    """Refuse what `load_shop` would refuse before reading the files: bad arguments, a
    missing directory, missing or ambiguous files."""
    _check_arguments(data_dir, num_products, goals)
    _data_files(Path(data_dir).expanduser().resolve(), goals)


def _data_files(root: Path, goals: str) -> list[Path]:
    names = ["items_shuffle", "items_ins_v2", *(["items_human_ins"] if goals == "human" else [])]
    return [_find(root, name) for name in names]


@functools.cache
def _load_shop(directory: str, num_products: int | None, seed: int, goal_kind: str) -> Shop:
    root = Path(directory)
    items = _read_json(_find(root, "items_shuffle"), list)
    attributes = _read_json(_find(root, "items_ins_v2"), dict)
    human = _read_json(_find(root, "items_human_ins"), dict) if goal_kind == "human" else {}
    if num_products is not None:
        items = items[:num_products]  # the original's files are shuffled already

    rng = random.Random(f"webshop-data-{seed}")
    products: list[Product] = []
    option_lists: list[dict[str, list[str]]] = []
    seen: set[str] = set()
    for record in items:
        asin = str(record.get("asin", ""))
        if asin == "nan" or not asin or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        option_lists.append(_option_lists(record))
        products.append(_product(record, option_lists[-1], attributes.get(asin) or {}, rng))

    if goal_kind == "synthetic":
        goals = _synthetic_goals(products, option_lists, attributes, rng)
        where = "items_ins_v2 should map product asins (found in items_shuffle) to entries "
        where += "with an instruction and non-empty instruction_attributes"
    else:
        goals = _human_goals(products, human, rng)
        where = "items_human_ins.json should map product asins (found in items_shuffle) to "
        where += "instructions with non-empty instruction_attributes"
    if len(goals) < 3:
        raise InvalidArgument(
            f"{directory} gives {len(goals)} usable {goal_kind} goals; each split needs one. "
            f"{where}."
        )
    return Shop(products=tuple(products), goals=split_goals(goals), source=directory)


def _human_goals(products: list[Product], human: dict[str, Any], rng: random.Random) -> list[Goal]:
    """The original's human goals: one per instruction that names attributes."""
    goals: list[Goal] = []
    for product in products:
        for k, entry in enumerate(human.get(product.asin) or []):
            goal_attributes = tuple(entry.get("instruction_attributes") or ())
            if not goal_attributes:
                continue  # the original skips these too
            options = entry.get("instruction_options") or []
            names = None
            if isinstance(options, dict):  # named: compared as the original compares them
                names = tuple(str(n) for n in options)
                options = list(options.values())
            price_upper = price_upper_bound(product.price, rng)
            goals.append(
                Goal.for_product(
                    product,
                    task_id=f"webshop-{product.asin}-{k}",
                    instruction=str(entry["instruction"]).strip(".") + price_clause(price_upper),
                    attributes=goal_attributes,
                    options=tuple(str(o) for o in options),
                    option_names=names,
                    price_upper=price_upper,
                )
            )
    return goals


def parse_pricing(pricing: Any) -> list[float]:
    """Prices in a pricing string: "$12.99" -> [12.99], "$10.00 - $20.00" -> [10.0, 20.0]."""
    if not pricing or not isinstance(pricing, str):
        return []
    prices = []
    for part in pricing.split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", part)
        try:
            prices.append(float(Decimal(digits)))
        except InvalidOperation:
            continue  # a malformed piece ("$N/A") is no price
    return prices[:2]


def _synthetic_goals(
    products: list[Product],
    option_lists: list[dict[str, list[str]]],
    attributes: dict[str, Any],
    rng: random.Random,
) -> list[Goal]:
    """The original's synthetic goals: one per combination of a product's option values."""
    goals: list[Goal] = []
    for product, options in zip(products, option_lists, strict=True):
        entry = attributes.get(product.asin) or {}
        text = entry.get("instruction")
        goal_attributes = tuple(str(a) for a in entry.get("instruction_attributes") or ())
        if text is None or not goal_attributes:
            continue
        price_upper = price_upper_bound(product.price, rng)  # one bound per product
        names = sorted(options)
        for k, values in enumerate(itertools.product(*(options[n] for n in names))):
            wanted = ", and ".join(f"{n}: {v}" for n, v in zip(names, values, strict=True))
            goals.append(
                Goal.for_product(
                    product,
                    task_id=f"webshop-{product.asin}-s{k}",
                    instruction=f"{text}{' with ' + wanted if wanted else ''}"
                    + price_clause(price_upper),
                    attributes=goal_attributes,
                    options=tuple(values),
                    option_names=tuple(names),
                    price_upper=price_upper,
                )
            )
    return goals


def _option_lists(record: dict[str, Any]) -> dict[str, list[str]]:
    """Option name -> values as the original keeps them: lowercased, "/" written " | ",
    repeats and empty lists kept (they shape the synthetic goals' combinations)."""
    options: dict[str, list[str]] = {}
    for name, contents in (record.get("customization_options") or {}).items():
        if contents is None:
            continue
        values = [str(c.get("value", "")).strip().replace("/", " | ").lower() for c in contents]
        options[str(name).lower()] = values
    return options


def _product(
    record: dict[str, Any],
    option_lists: dict[str, list[str]],
    attributes: dict[str, Any],
    rng: random.Random,
) -> Product:
    prices = parse_pricing(record.get("pricing"))
    if not prices:
        price, price_text = DEFAULT_PRICE, f"${DEFAULT_PRICE}"
    elif len(prices) == 1:
        price, price_text = prices[0], f"${prices[0]}"
    else:
        price, price_text = rng.uniform(*prices), f"${prices[0]} to ${prices[1]}"
    # Shown once each: repeats and empty values are left off the page.
    options = {
        name: tuple(dict.fromkeys(v for v in values if v)) for name, values in option_lists.items()
    }
    bullets = record.get("small_description") or []
    if isinstance(bullets, str):
        bullets = [bullets]
    return Product(
        asin=str(record["asin"]),
        title=str(record.get("name") or ""),
        description=str(record.get("full_description") or ""),
        bullets=tuple(str(b) for b in bullets),
        category=str(record.get("category") or ""),
        query=str(record.get("query") or "").lower().strip(),
        category_path=str(record.get("product_category") or ""),
        attributes=tuple(str(a) for a in attributes.get("attributes") or ()),
        options={name: values for name, values in options.items() if values},
        price=price,
        price_text=price_text,
    )


def _find(root: Path, prefix: str) -> Path:
    """`prefix.json` in `root`, else the one `prefix*.json` there."""
    exact = root / f"{prefix}.json"
    if exact.is_file():
        return exact
    matches = sorted(root.glob(f"{prefix}*.json"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InvalidArgument(
            f"{root} has no {prefix}*.json. The WebShop data directory needs "
            "items_shuffle*.json, items_ins_v2*.json and items_human_ins.json "
            "(princeton-nlp/WebShop's setup.sh downloads them)."
        )
    names = ", ".join(m.name for m in matches)
    raise InvalidArgument(
        f"{root} has several {prefix}*.json ({names}) and no {prefix}.json; keep one of them."
    )


def _read_json(path: Path, kind: type) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{path} is not valid JSON: {exc}.") from None
    if not isinstance(data, kind):
        raise InvalidArgument(
            f"{path} should hold a JSON {'list' if kind is list else 'object'}; "
            f"got {type(data).__name__}. See the schema in agentrl.envs.webshop.data."
        )
    return data
