"""The WebShop env: contract, scripted policies, reward, splits, and the original data format."""

from __future__ import annotations

import difflib
import json
import random
import re
import statistics
import time
import warnings

import pytest
from agentrl.envs.webshop import WebShopEnv
from agentrl.envs.webshop.baselines import (
    first_result_policy,
    oracle_policy,
    play,
    random_policy,
)
from agentrl.envs.webshop.catalog import Goal, Product, instruction_queries
from agentrl.envs.webshop.data import load_shop, parse_pricing
from agentrl.envs.webshop.reward import (
    fuzzy,
    get_reward,
    goal_option_targets,
    normalize_color,
    title_words,
)
from agentrl.envs.webshop.synthetic import synthetic_shop
from agentrl.envs.webshop.vocab import HELD_OUT_TEMPLATES

import agentrl
from agentrl.errors import InvalidArgument


@pytest.fixture(scope="module")
def test_env() -> WebShopEnv:
    return agentrl.make("webshop", split="test")


# ---------------------------------------------------------------------- contract


@pytest.mark.parametrize("split", ["train", "test"])
def test_passes_the_checker_made_and_built_directly(split):
    agentrl.check_env(agentrl.make("webshop", split=split))
    agentrl.check_env(WebShopEnv(split=split))


def test_declares_the_bracket_format_and_explains_the_shop():
    assert WebShopEnv.action_format == "bracket"
    assert WebShopEnv.action_names == ("search", "click")
    assert WebShopEnv.default_max_turns == 15
    assert "search[red shoes]" in WebShopEnv.instructions.replace("running ", "")
    assert "click[B0123ABCDE]" in WebShopEnv.instructions


def test_fork_is_independent_and_shares_the_shop(test_env):
    test_env.reset(options={"task_index": 3})
    test_env.step(test_env.valid_actions()[0])
    child = test_env.fork()
    assert child.shop is test_env.shop and child.goal is test_env.goal
    child.step(f"click[{child.visible_results()[0]}]")
    assert child.page == "item" and test_env.page == "results"


# ---------------------------------------------------------------------- policies


def test_the_oracle_buys_the_goal_on_every_sampled_test_task(test_env):
    size = test_env.num_tasks("test")
    for index in range(0, size, max(1, size // 30)):
        reward, success = play(test_env, oracle_policy, index)
        assert (reward, success) == (1.0, True), test_env.goal.instruction
        assert test_env.turn <= 10  # search, pages, product, options and buy fit the budget


def test_random_play_scores_low_and_the_rule_baseline_in_between(test_env):
    tasks = range(0, test_env.num_tasks("test"), 2)
    policy = random_policy(0)  # one stream of random choices across the episodes
    random_mean = statistics.fmean(play(test_env, policy, i)[0] for i in tasks)
    rule_mean = statistics.fmean(play(test_env, first_result_policy, i)[0] for i in tasks)
    assert random_mean < 0.3
    assert random_mean < rule_mean < 1.0


# ---------------------------------------------------------------------- pages and actions


def test_pages_paginate_and_navigate(test_env):
    obs, _ = test_env.reset(options={"task_index": 0})
    assert obs.startswith(f"Instruction: {test_env.goal.instruction}") and "[Search page]" in obs
    obs = test_env.step("search[hair extension]")[0]
    first_page = test_env.visible_results()
    assert len(first_page) == 10 and "results 1-10 of 50" in obs
    assert f"[{first_page[0]}]" in obs and "click[Next >]" in obs and "click[< Prev]" not in obs
    obs = test_env.step("click[Next >]")[0]
    assert "results 11-20" in obs and not set(first_page) & set(test_env.visible_results())
    test_env.step("click[< Prev]")
    assert test_env.visible_results() == first_page
    asin = first_page[1]
    obs = test_env.step(f"click[{asin.lower()}]")[0]  # ids are matched case-insensitively
    product = test_env.shop.by_asin[asin]
    assert f"[Item {asin}] {product.title}" in obs and f"Price: {product.price_text}" in obs
    name, values = next(iter(product.options.items()))
    obs = test_env.step(f"click[{values[-1]}]")[0]
    assert f"(chosen: {values[-1]})" in obs and test_env.options == {name: values[-1]}
    assert product.description in test_env.step("click[Description]")[0]
    test_env.step("click[< Prev]")
    assert product.bullets[0] in test_env.step("click[Features]")[0]
    test_env.step("click[< Prev]")
    assert test_env.page == "item" and test_env.options == {name: values[-1]}
    test_env.step("click[< Prev]")
    assert test_env.page == "results" and test_env.options == {}
    assert "[Search page]" in test_env.step("click[Back to Search]")[0]


def test_invalid_actions_list_what_is_available_and_keep_the_episode(test_env):
    test_env.reset(options={"task_index": 1})
    obs, _, terminated, _, info = test_env.step("click[Buy Now]")
    assert info["invalid_action"] and not terminated
    assert "Available actions: search[your query], e.g. search[" in obs
    test_env.step(test_env.valid_actions()[0])
    for action in ("search[socks]", "click[Buy Now]", "click[B000000000]", "buy it"):
        obs, _, terminated, _, info = test_env.step(action)
        assert info["invalid_action"] and not terminated and not test_env.done
        assert obs.startswith(f"Invalid action {action!r}")
        assert "Available actions: click[Back to Search], click[Next >]" in obs
        assert all(f"click[{asin}]" in obs for asin in test_env.visible_results())
    test_env.step("click[Back to Search]")
    obs = test_env.step(f"search[{'word ' * 100}]")[0]
    assert "keep it under 300" in obs


def test_small_model_aids_prefix_replies_and_number_the_results():
    env = agentrl.make("webshop", split="test", action_prefix=True, numbered_results=True)
    env.reset(options={"task_index": 0})
    assert env.response_prefix() == "search["
    obs = env.step(env.valid_actions()[0])[0]
    shown = env.visible_results()
    assert env.response_prefix() == "click["
    # each product once, numbered, as the last lines of the page
    assert obs.splitlines()[-1].startswith(f"click[{len(shown)}] [{shown[-1]}] ")
    assert all(obs.count(asin) == 1 for asin in shown)
    obs, _, _, _, info = env.step("click[11]")
    assert info["invalid_action"] and "this page shows products 1 to 10, not 11" in obs
    assert obs.endswith(f"click[1] to click[{len(shown)}]")
    env.step("click[3]")
    assert env.page == "item" and env.asin == shown[2]
    assert env.step("click[Buy Now]")[2] and env.response_prefix() == ""  # done: none
    plain = agentrl.make("webshop", split="test")  # the original behaviour by default
    plain.reset(options={"task_index": 0})
    plain.step(plain.valid_actions()[0])
    assert plain.response_prefix() == "" and plain.step("click[3]")[4]["invalid_action"]
    with pytest.raises(InvalidArgument, match="numbered_results must be true or false"):
        agentrl.make("webshop", numbered_results="yes")


@pytest.mark.parametrize("numbered", [False, True])
def test_demonstrations_are_a_whole_oracle_episode_on_a_train_task(numbered):
    env = agentrl.make("webshop", split="test", numbered_results=numbered)
    turns = env.demonstrations()
    actions = [action for _, action in turns]
    assert len(turns) == 4 and actions[0].startswith("search[")
    first = re.search(r"^click\[(?:1\] \[)?(\w{10})\]", turns[1][0], re.M).group(1)
    assert actions[1] == ("click[1]" if numbered else f"click[{first}]")  # the first listed
    assert actions[-1] == "click[Buy Now]"
    instruction = turns[0][0].splitlines()[0].removeprefix("Instruction: ")
    assert instruction in {g.instruction for g in env.shop.goals["train"]}
    assert turns[1][0].endswith("...")  # the results list is cut to three products
    env.reset(options={"task_index": 0})
    replay = agentrl.make("webshop", split="train", numbered_results=numbered)
    index = [g.instruction for g in env.shop.goals["train"]].index(instruction)
    replay.reset(options={"task_index": index})
    for action in actions:
        *_, info = replay.step(action)
    assert info["success"]  # the demonstration buys the right product and option


def test_search_page_offers_queries_built_from_the_instruction():
    queries = instruction_queries(
        "i need a long clip-in hair extension which is natural looking, and price lower "
        "than 40.00 dollars"
    )
    assert queries == [
        "i need a long clip-in hair extension which is natural looking",
        "long clip-in hair extension natural looking",
    ]


def test_buying_ends_the_episode_with_the_reward_components(test_env):
    index = next(i for i, g in enumerate(test_env.shop.goals["test"]) if g.options)
    test_env.reset(options={"task_index": index})
    while test_env.page != "item":
        test_env.step(oracle_policy(test_env))
    obs, reward, terminated, _, info = test_env.step("click[Buy Now]")  # no option chosen
    goal = test_env.goal
    assert terminated and test_env.done and "Your score" in obs
    assert set(info) >= {"r_att", "r_option", "r_price", "r_type", "success"}
    assert info["r_option"] == 0.0 and info["success"] is False
    assert reward == pytest.approx(
        (len(goal.attributes) + 1) / (len(goal.attributes) + len(goal.options) + 1)
    )


# ---------------------------------------------------------------------- reward


def _product(**changes) -> Product:
    fields = {
        "asin": "B000000001",
        "title": "Lumina Clip-In Hair Extension, Natural Looking",
        "description": "A clip-in hair extension that is natural looking and tangle free.",
        "bullets": ("NATURAL LOOKING: blends in",),
        "category": "beauty",
        "query": "hair extensions",
        "category_path": "beauty & personal care › hair care › hair extensions",
        "attributes": ("natural looking", "long-lasting"),
        "options": {"color": ("black", "blonde"), "size": ("14 inch", "18 inch")},
        "price": 25.0,
        "price_text": "$25.00",
    }
    return Product(**{**fields, **changes})


def _goal(**changes) -> Goal:
    product = _product()
    fields = {
        "task_id": "hand-made",
        "asin": product.asin,
        "instruction": "i need a clip-in hair extension ...",
        "attributes": ("natural looking", "long lasting"),
        "options": ("black", "18 inch"),
        "price_upper": 30.0,
        "query": product.query,
        "category_path": product.category_path,
        "name": product.title,
    }
    return Goal(**{**fields, **changes})


RIGHT = {"color": "black", "size": "18 inch"}


@pytest.mark.parametrize(
    ("product", "goal", "price", "options", "expected"),
    [
        # 2 attributes + 2 options + price = 5 parts; "long-lasting" fuzzy-matches.
        (_product(), _goal(), 25.0, RIGHT, (1.0, 1.0, 1.0, 1.0)),
        # Wrong color: 4 of 5 parts.
        (_product(), _goal(), 25.0, {**RIGHT, "color": "blonde"}, (0.8, 1.0, 0.5, 1.0)),
        # Size compares fuzzily too, as in the original: "18 inches" scores 88 against
        # "18 inch", and even "14 inch" scores 86 (> 85), so both count.
        (_product(), _goal(), 25.0, {**RIGHT, "size": "18 inches"}, (1.0, 1.0, 1.0, 1.0)),
        (_product(), _goal(), 25.0, {**RIGHT, "size": "14 inch"}, (1.0, 1.0, 1.0, 1.0)),
        # A size that does not fuzzy-match: 4 of 5 parts.
        (_product(), _goal(), 25.0, {**RIGHT, "size": "x-large"}, (0.8, 1.0, 0.5, 1.0)),
        # Over the price bound.
        (_product(), _goal(), 35.0, RIGHT, (0.8, 1.0, 1.0, 0.0)),
        # A goal attribute the product lacks, in its attributes and its text.
        (
            _product(),
            _goal(attributes=("natural looking", "heat resistant")),
            25.0,
            RIGHT,
            (0.8, 0.5, 1.0, 1.0),
        ),
        # An attribute found only in the description still counts.
        (_product(), _goal(attributes=("tangle free",)), 25.0, RIGHT, (1.0, 1.0, 1.0, 1.0)),
        # No options chosen, none asked: only attributes and price count.
        (_product(), _goal(options=()), 25.0, {}, (1.0, 1.0, 1.0, 1.0)),
        # "jet black" normalizes to "black".
        (_product(), _goal(), 25.0, {**RIGHT, "color": "jet black"}, (1.0, 1.0, 1.0, 1.0)),
    ],
)
def test_reward_parts_on_hand_made_cases(product, goal, price, options, expected):
    info = get_reward(product, goal, price, options)
    assert (info.reward, info.r_att, info.r_option, info.r_price) == pytest.approx(expected)
    assert info.r_type == 1.0


@pytest.mark.parametrize(
    ("title", "r_type"),
    [
        ("Ceramic Clip-In Hair Extension Holder", 1.0),  # title overlap 3/6 > 0.2
        ("Ionic Hair Dryer", 0.5),  # 1/6: no query, category or title match
        ("Travel Coffee Mug", 0.0),  # no word in common
    ],
)
def test_type_reward_from_query_category_and_title(title, r_type):
    other = _product(title=title, query="other", category_path="home › kitchen › mugs")
    info = get_reward(other, _goal(), 25.0, RIGHT)
    # Attributes, options and price all match, so the type factor is the whole reward.
    assert info.r_type == info.reward == r_type


def test_a_wrong_option_mentioned_in_the_product_text_never_counts():
    # The product's text says "blonde", but the goal asks for black: buying blonde
    # misses one option (earlier versions counted text mentions and scored 1.0).
    product = _product(description="Blonde hair, 18 inch long.")
    info = get_reward(product, _goal(), 25.0, {"color": "blonde", "size": "18 inch"})
    assert (info.reward, info.r_option) == pytest.approx((0.8, 0.5))
    # Extra chosen options never push the count past the goal's options.
    info = get_reward(product, _goal(options=("black",)), 25.0, {"a": "black", "b": "black"})
    assert info.r_option == 1.0 and info.reward == 1.0


def test_every_wrong_option_purchase_of_the_generated_catalog_is_short_of_success():
    shop = synthetic_shop(3000, 0)
    checked = 0
    for goal in shop.goals["test"][:200]:
        product = shop.by_asin[goal.asin]
        right = {n: v for n, vs in product.options.items() for v in vs if v in goal.options}
        for name, values in product.options.items():
            if not set(values) & set(goal.options):
                continue  # an option the goal does not ask for
            for wrong in values:
                if wrong in goal.options:
                    continue
                info = get_reward(product, goal, product.price, {**right, name: wrong})
                assert info.reward < 1.0, (goal.instruction, name, wrong)
                checked += 1
    assert checked > 200


def test_named_goal_options_compare_as_the_original_pairs():
    # The original passes a mapping's items(): ("color", "grey") normalizes to "grey"
    # (a color word in the pair); ("size", "XL") stays a pair whose text is "size xl",
    # which "XL" matches; ("amount", "pack of 12") is not matched by "grey" or "XL".
    goal = _goal(options=("grey", "XL"), option_names=("color", "size"))
    info = get_reward(_product(), goal, 25.0, {"color": "grey", "size": "XL"})
    assert info.r_option == 1.0 and info.reward == 1.0
    goal = _goal(options=("grey", "XL", "pack of 12"), option_names=("color", "size", "amount"))
    info = get_reward(_product(), goal, 25.0, {"color": "grey", "size": "XL"})
    assert info.r_option == pytest.approx(2 / 3) and info.reward == pytest.approx(5 / 6)
    assert goal_option_targets(goal) == ["grey", ("size", "XL"), ("amount", "pack of 12")]


def test_title_overlap_divides_by_the_goal_title_words_with_repeats():
    # Goal words: shoe, rack, shoe, organizer (4); shared distinct words: shoe (1).
    other = _product(title="Shoe Box", query="other", category_path="x › y › z")
    info = get_reward(other, _goal(name="Shoe Rack Shoe Organizer"), 25.0, RIGHT)
    assert info.title_score == 0.25 and info.r_type == 1.0
    assert title_words("Clip-In Hair, 2-Pack") == ["clip", "hair", "pack"]


def _thefuzz_token_set_ratio():
    """The original's scorer: thefuzz 0.19.0 on difflib (WebShop installs no Levenshtein)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns that it runs on difflib: that is the point
        from thefuzz import fuzz
    if fuzz.SequenceMatcher is not difflib.SequenceMatcher:
        pytest.skip("python-Levenshtein is installed, so thefuzz is not the original's scorer")
    return fuzz.token_set_ratio


def test_fuzzy_equals_the_original_scorer():
    original = _thefuzz_token_set_ratio()
    known = [
        ("crème brûlée", "creme brulee", 86),  # characters 128-255 are deleted first
        ("snake_case", "snake case", 50),  # "_" is a word character
        ("14 inch", "18 inch", 86),
        ("natural looking", "natural-looking", 100),
        (("size", "XL"), "XL", 100),  # a pair reads as its text
    ]
    for a, b, score in known:
        assert fuzzy(a, b) == original(a, b) == score, (a, b)
    words = str.split(
        "inch inches 18 14 x-large large navy blue white black pack of 12 oz fl ounce "
        "natural looking long-lasting snake_case café cafe crème creme ø ß İ １ ǅ"
    )
    rng = random.Random(0)
    for _ in range(3000):
        a, b = (
            " ".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
            + rng.choice(["", "!", "-x", " Ünï"])
            for _ in range(2)
        )
        assert fuzzy(a, b) == original(a, b), (a, b)
    shop = synthetic_shop(3000, 0)
    for product in shop.products[:300]:
        for have in product.attributes:
            for wanted in shop.products[0].attributes:
                assert fuzzy(have, wanted) == original(have, wanted)


def test_normalize_color_matches_the_original():
    for value, expected in [
        ("", ""),
        ("black forest", "black"),
        ("violet lavender", "lavender"),
        ("123alabaster", "alabaster"),
        ("webshop", "webshop"),
    ]:
        assert normalize_color(value) == expected


# ---------------------------------------------------------------------- generated catalog


def test_splits_are_disjoint_and_test_holds_held_out_products_and_phrasings():
    shop = synthetic_shop()
    assert len(shop.products) == 3000
    assert {s: len(g) for s, g in shop.goals.items()} == {"train": 2400, "valid": 300, "test": 300}
    asins = {split: {g.asin for g in goals} for split, goals in shop.goals.items()}
    assert not asins["train"] & asins["test"] and not asins["train"] & asins["valid"]
    ids = [g.task_id for goals in shop.goals.values() for g in goals]
    assert len(ids) == len(set(ids))
    held_out = tuple(t.split("{")[0] for t in HELD_OUT_TEMPLATES)
    assert not any(g.instruction.startswith(held_out) for g in shop.goals["train"])
    assert sum(g.instruction.startswith(held_out) for g in shop.goals["test"]) > 50


def test_goals_are_built_from_their_products():
    shop = synthetic_shop()
    for goal in shop.goals["test"][:50]:
        product = shop.by_asin[goal.asin]
        assert set(goal.attributes) <= set(product.attributes) and 1 <= len(goal.attributes) <= 3
        offered = {v for vs in product.options.values() for v in vs}
        assert set(goal.options) <= offered and all(v in goal.instruction for v in goal.options)
        assert product.price < goal.price_upper
        assert re.search(r"\d+\.00 dollars", goal.instruction)
        assert (
            re.fullmatch(r"B0[A-Z0-9]{8}", product.asin) and product.category_path.count("›") >= 2
        )


def test_the_catalog_is_cached_deterministic_and_quick_to_build():
    assert synthetic_shop(3000, 0) is synthetic_shop(3000, 0)
    start = time.perf_counter()
    shop = synthetic_shop(3000, 11)
    assert time.perf_counter() - start < 5.0  # about 1 s, with the search index
    small = WebShopEnv(num_products=60, catalog_seed=11)
    assert small.split_sizes() == {"train": 48, "valid": 6, "test": 6}
    assert shop.products[0].asin != synthetic_shop(3000, 0).products[0].asin
    with pytest.raises(InvalidArgument, match="at least 30"):
        WebShopEnv(num_products=10)


# ---------------------------------------------------------------------- original data format


def _write_original_files(root) -> None:
    """A small catalog in the schema of princeton-nlp/WebShop's data files."""
    kinds = [
        (
            "t-shirt",
            "men t-shirt",
            "clothing, shoes & jewelry › men › clothing › shirts",
            "fashion",
            ["machine washable", "short sleeve"],
        ),
        (
            "hair extension",
            "hair extensions",
            "beauty & personal care › hair care › extensions",
            "beauty",
            ["natural looking", "long lasting"],
        ),
        (
            "bluetooth speaker",
            "bluetooth speaker",
            "electronics › portable audio › speakers",
            "electronics",
            ["stereo sound", "water resistant"],
        ),
    ]
    items, attributes, human = [], {}, {}
    for i in range(12):
        noun, query, path, category, atts = kinds[i % 3]
        asin = f"B00000{i:04d}"
        items.append(
            {
                "asin": asin,
                "name": f"Brand{i} {noun.title()} Model {i}",
                "full_description": f"A {noun} that is {atts[0]}. Model number {i}.",
                "small_description": [f"{atts[1].upper()}: really {atts[1]}", "Great gift"],
                "pricing": ["$12.99", "$10.00 - $20.00", "", "$1,299.00"][i % 4],
                "customization_options": {
                    "Color": [
                        {"value": "Black", "image": None},
                        {"value": "Navy/White", "image": None},
                    ],
                    "Size": [{"value": "Large"}, {"value": "X-Large"}],
                }
                if i % 3 != 2
                else None,
                "category": category,
                "query": query.upper() + " ",
                "product_category": path,
                "images": [""],
            }
        )
        attributes[asin] = {
            "attributes": atts,
            "instruction": f"i want a {noun}",
            "instruction_attributes": [atts[0]],
        }
        human[asin] = [
            {
                "asin": asin,
                "instruction": f"i need a model {i} {noun} that is {atts[0]}.",
                "instruction_attributes": [atts[0]],
                "instruction_options": ["navy | white", "x-large"] if i % 3 != 2 else [],
                "assignment_id": f"a{i}",
                "worker_id": "w",
            },
            {
                "asin": asin,
                "instruction": f"brand{i} {noun} with {atts[1]}",
                "instruction_attributes": [atts[1]],
                "instruction_options": ["black"] if i % 3 != 2 else [],
            },
        ]
    human["B000000000"][1]["instruction_attributes"] = []  # skipped, as in the original
    items.append(dict(items[0]))  # a repeated asin is skipped
    items.append({**items[1], "asin": "nan"})
    items.append({**items[1], "asin": "B0TOOLONG123"})
    (root / "items_shuffle_1000.json").write_text(json.dumps(items))
    (root / "items_ins_v2_1000.json").write_text(json.dumps(attributes))
    (root / "items_human_ins.json").write_text(json.dumps(human))


def test_the_original_files_load_with_their_schema(tmp_path):
    _write_original_files(tmp_path)
    shop = load_shop(tmp_path)
    assert load_shop(str(tmp_path)) is shop  # cached per directory
    assert len(shop.products) == 12
    shirt = shop.by_asin["B000000000"]
    assert shirt.options == {"color": ("black", "navy | white"), "size": ("large", "x-large")}
    assert shirt.query == "men t-shirt" and shirt.price == 12.99 and shirt.price_text == "$12.99"
    assert shirt.attributes == ("machine washable", "short sleeve")
    ranged = shop.by_asin["B000000001"]
    assert 10.0 <= ranged.price <= 20.0 and ranged.price_text == "$10.0 to $20.0"
    assert shop.by_asin["B000000002"].price == 100.0  # no pricing
    assert shop.by_asin["B000000003"].price == 1299.0
    goals = [g for split in shop.goals.values() for g in split]
    assert len(goals) == 23  # 24 instructions, one without attributes
    assert {s: len(g) for s, g in shop.goals.items()} == {"train": 19, "valid": 2, "test": 2}
    assert len({g.task_id for g in goals}) == 23
    by_id = {g.task_id: g for g in goals}
    first = by_id["webshop-B000000000-0"]
    assert first.instruction.startswith("i need a model 0 t-shirt that is machine washable, and ")
    assert first.options == ("navy | white", "x-large") and first.price_upper in (30.0, 40.0, 50.0)
    assert "price lower than" not in by_id["webshop-B000000003-0"].instruction  # $1299: no bound
    assert parse_pricing("$10.00 - $20.00") == [10.0, 20.0] and parse_pricing(None) == []


def test_the_original_files_give_playable_tasks_with_the_same_reward(tmp_path):
    _write_original_files(tmp_path)
    agentrl.check_env(agentrl.make("webshop", split="train", data_dir=str(tmp_path)))
    for split in agentrl.SPLITS:
        env = WebShopEnv(split=split, data_dir=tmp_path)
        for index in range(env.num_tasks(split)):
            assert play(env, oracle_policy, index) == (1.0, True), env.goal.instruction
    env.reset(options={"task_index": 0})
    while env.page != "item":
        env.step(oracle_policy(env))
    _, reward, _, _, info = env.step("click[Buy Now]")
    product = env.shop.by_asin[env.asin]
    assert reward == get_reward(product, env.goal, product.price, {}).reward == info["reward"]


def test_the_original_synthetic_goals_load_and_play(tmp_path):
    _write_original_files(tmp_path)
    shop = load_shop(tmp_path, goals="synthetic")
    goals = [g for split in shop.goals.values() for g in split]
    # 8 products with 2 colors x 2 sizes, 4 without options: 8 * 4 + 4 goals.
    assert len(goals) == 36 and len({g.task_id for g in goals}) == 36
    by_id = {g.task_id: g for g in goals}
    first = by_id["webshop-B000000000-s1"]  # names sorted: color, then size
    assert first.instruction.startswith("i want a t-shirt with color: black, and size: x-large")
    assert first.options == ("black", "x-large") and first.option_names == ("color", "size")
    assert first.attributes == ("machine washable",)
    assert by_id["webshop-B000000002-s0"].option_names == ()
    env = WebShopEnv(split="train", data_dir=tmp_path, goals="synthetic")
    for index in range(env.num_tasks("train")):
        assert play(env, oracle_policy, index) == (1.0, True), env.goal.instruction
    with pytest.raises(InvalidArgument, match="needs data_dir"):
        WebShopEnv(goals="synthetic")
    with pytest.raises(InvalidArgument, match="goals must be"):
        WebShopEnv(data_dir=tmp_path, goals="people")


def test_bad_data_directories_are_explained(tmp_path):
    with pytest.raises(InvalidArgument, match="must be a directory"):
        WebShopEnv(data_dir=tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="has no items_shuffle"):
        WebShopEnv(data_dir=tmp_path)
    _write_original_files(tmp_path)
    (tmp_path / "items_human_ins.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="gives 0 usable human goals"):
        WebShopEnv(data_dir=tmp_path).reset()  # the files are read on first use
    (tmp_path / "items_ins_v2_extra.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="several items_ins_v2"):
        WebShopEnv(data_dir=tmp_path)
