"""WebShop (Yao et al. 2022) in text mode: search a shop and buy what an instruction asks for.

    env = agentrl.make("webshop", split="test")
    obs, info = env.reset(seed=0)      # the instruction and the search page
    env.step("search[clip-in hair extension natural looking]")   # results, 10 a page
    env.step("click[B0WX5EH2JW]")      # an item page with its options
    env.step("click[dark brown]")      # choose an option value
    env.step("click[Buy Now]")         # reward in [0, 1]; the episode ends

Pages and what can be clicked on them, as in the original text environment:

| page        | clickable                                                            |
|-------------|----------------------------------------------------------------------|
| search      | nothing: `search[query]` is the only action                          |
| results     | product ids on the page, `< Prev`, `Next >`, `Back to Search`        |
| item        | option values, `Description`, `Features`, `Buy Now`, `< Prev`, `Back to Search` |
| description, features | `< Prev` (back to the item), `Back to Search`              |

Every observation lists the available actions (on results and item pages the products
and option values themselves, written as click[...] lines, come last), and an invalid
action is answered with that list without ending the episode. Two aids for small
models, off by default: `numbered_results` (click[3] opens the third result) and
`action_prefix` (the env writes "search[" or "click[" at the start of the reply).
The reward of a purchase is the original's (`reward.get_reward`); `info` at the end
carries its components and `success` is reward == 1.

The products come from a generated catalog (`synthetic.py`, `num_products` products,
default 3000) or, with `data_dir`, from the original WebShop files (`data.py`). The
shop, its search index and its goals are built once per source and shared by every env
and every fork; an env holds only its episode's state.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

from agentrl.envs.webshop.catalog import Goal, Product, Shop, instruction_queries
from agentrl.envs.webshop.data import check_data_dir, load_shop
from agentrl.envs.webshop.reward import get_reward
from agentrl.envs.webshop.search import PAGE_SIZE
from agentrl.envs.webshop.synthetic import (
    DEFAULT_NUM_PRODUCTS,
    check_num_products,
    synthetic_shop,
)

from agentrl.core import InvalidAction, Outcome, Split, TextEnv
from agentrl.errors import InvalidArgument

BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
DESCRIPTION = "Description"
FEATURES = "Features"
BUY_NOW = "Buy Now"
MAX_QUERY_CHARS = 300
_ACTION = re.compile(r"\s*(search|click)\s*\[(.*)\]\s*", re.IGNORECASE | re.DOTALL)


class _Refused(Exception):
    """Why an action cannot be done on the current page (becomes an InvalidAction)."""


class WebShopEnv(TextEnv):
    """Find and buy the product an instruction describes: search[query] and click[element].

    Args:
        split: which goals episodes are drawn from.
        num_products: catalog size. Generated catalog: default 3000 (at least 30). With
            `data_dir`: keep the first `num_products` products of the file (default all).
        catalog_seed: seed of the generated catalog, and of the price draws of the
            original data (price ranges, price bounds).
        data_dir: a directory with the original WebShop JSON files (see `data.py`);
            None uses the generated catalog.
        goals: with `data_dir`, "human" (the instructions people wrote, the default) or
            "synthetic" (one goal per product option combination, from items_ins_v2), as
            the original's `human_goals` flag; the generated catalog has its own goals.
        max_turns: step budget; default 15.
        render_mode: None or "ansi".
        action_prefix: start each reply for the agent with what the page allows,
            "search[" on the search page and "click[" elsewhere (`response_prefix`), so
            the agent writes only the query or the element. An aid for small models
            (the CPU recipes turn it on); off by default, as in the original.
        numbered_results: number the products of a results page, so that click[3]
            opens the third one as click[its id] does. Copying a 10-character id is
            error-prone for small models (the CPU recipes turn it on); off by default.
    """

    default_max_turns = 15
    instructions = (
        "You are shopping in WebShop, an online store, for a product that an instruction "
        "describes. Each page shows the instruction, what is on the page and the actions "
        "available. On the search page, search with search[query], e.g. "
        "search[red running shoes]. Elsewhere, click a product id, an option value or a "
        "button with click[...], e.g. click[B0123ABCDE], click[x-large], "
        "click[Description], click[Next >], click[< Prev] or click[Back to Search]. Choose "
        "the options the instruction asks for, then click[Buy Now]: buying ends the "
        "episode, and the score says how well the product fits the instruction."
    )
    action_names = ("search", "click")
    # No WebShop action holds a "]", so a turn can end at the first one: small models
    # otherwise run on past their action until the token limit.
    stop_strings = ("]",)

    def __init__(
        self,
        split: Split = "train",
        num_products: int | None = None,
        catalog_seed: int = 0,
        data_dir: str | Path | None = None,
        goals: str = "human",
        max_turns: int | None = None,
        render_mode: str | None = None,
        action_prefix: bool = False,
        numbered_results: bool = False,
    ) -> None:
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        if not isinstance(action_prefix, bool):
            raise InvalidArgument(f"action_prefix must be true or false; got {action_prefix!r}.")
        if not isinstance(numbered_results, bool):
            raise InvalidArgument(
                f"numbered_results must be true or false; got {numbered_results!r}."
            )
        self.action_prefix = action_prefix
        self.numbered_results = numbered_results
        if isinstance(catalog_seed, bool) or not isinstance(catalog_seed, int):
            raise InvalidArgument(f"catalog_seed must be an integer; got {catalog_seed!r}.")
        # Arguments are checked now; the shop (catalog, goals, search index: about a second
        # to build) is built, once per process and source, when the env first needs it.
        if data_dir is None:
            if goals != "human":
                raise InvalidArgument(
                    f"goals={goals!r} needs data_dir (the original WebShop files); the "
                    "generated catalog has its own goals. Leave goals unset, or set data_dir."
                )
            size = DEFAULT_NUM_PRODUCTS if num_products is None else num_products
            check_num_products(size)
            self._make_shop = functools.partial(synthetic_shop, size, catalog_seed)
        else:
            check_data_dir(data_dir, num_products, goals)
            self._make_shop = functools.partial(
                load_shop, data_dir, num_products, catalog_seed, goals
            )
        self._shop: Shop | None = None
        self.goal: Goal | None = None
        self.page = "search"
        self.keywords = ""
        self.results: tuple[str, ...] = ()
        self.page_number = 1
        self.asin: str | None = None
        self.options: dict[str, str] = {}
        self.searches: list[str] = []  # this episode's queries

    @property
    def shop(self) -> Shop:
        """The products, goals and search engine (built on first use, shared)."""
        if self._shop is None:
            self._shop = self._make_shop()
        return self._shop

    # ------------------------------------------------------------------ TextEnv API

    def num_tasks(self, split: Split) -> int:
        return len(self.shop.goals[split])

    def task_id(self, split: Split, index: int) -> str:
        return self.shop.goals[split][index].task_id

    def load_task(self, split: Split, index: int) -> str:
        self.goal = self.shop.goals[split][index]
        self.searches = []
        self._go_to_search()
        return self._observation()

    def act(self, action: str) -> Outcome:
        try:
            match = _ACTION.fullmatch(action)
            if match is None:
                raise _Refused("write search[query] or click[element]")
            name, argument = match.group(1).lower(), " ".join(match.group(2).split())
            outcome = self._search(argument) if name == "search" else self._click(argument)
            outcome.info.setdefault("tool_call", name)  # each valid action calls the shop
            return outcome
        except _Refused as exc:
            raise InvalidAction(
                f"Invalid action {action[:80]!r}: {exc}.\nAvailable actions: {self._available()}"
            ) from None

    def demonstrations(self) -> list[tuple[str, str]]:
        """A whole oracle episode on a train task: a search, a click on the right
        product, its option, Buy Now. The task is the first train task whose product
        the search puts first and that asks for one option: the product click is then
        the one a small model can best copy (the first listed) and the episode is four
        turns. Observations are shortened to keep prompts small; the task at hand is
        never shown (train tasks only)."""
        from agentrl.envs.webshop.baselines import oracle_policy

        demo = copy.deepcopy(self)  # the shop is shared, not copied (see Shop.__deepcopy__)
        demo.split = "train"
        demo.render_mode = None
        demo.max_turns = self.default_max_turns  # the demo is not bound by this env's budget
        turns: list[tuple[str, str]] = []
        for task_index in range(min(100, self.num_tasks("train"))):
            observation, _ = demo.reset(seed=0, options={"task_index": task_index})
            if len(demo.goal.options) != 1:
                continue
            turns = []
            while not demo.done and len(turns) < 6:
                action = oracle_policy(demo)
                if demo.page == "results" and demo.numbered_results:
                    action = f"click[{demo.visible_results().index(demo.goal.asin) + 1}]"
                turns.append((_shorten(observation), action))
                observation = demo.step(action)[0]
            if turns and demo.done and demo.asin == demo.visible_results()[0]:
                return turns
        return turns

    def response_prefix(self) -> str:
        if not self.action_prefix or self.goal is None or self.page == "done":
            return ""
        return "search[" if self.page == "search" else "click["

    def valid_actions(self) -> list[str]:
        if self.goal is None or self.page == "done":
            return []
        if self.page == "search":
            return [f"search[{q}]" for q in instruction_queries(self.goal.instruction)]
        return [f"click[{label}]" for label in self._buttons()]

    # ------------------------------------------------------------------ actions

    def _search(self, query: str) -> Outcome:
        if self.page != "search":
            raise _Refused(
                f"search[...] works only on the search page; click[{BACK_TO_SEARCH}] first"
            )
        if not query:
            raise _Refused("search[...] needs words to search for, e.g. search[red shoes]")
        if len(query) > MAX_QUERY_CHARS:
            raise _Refused(
                f"the query is {len(query)} characters long; keep it under {MAX_QUERY_CHARS}"
            )
        self.keywords = query.lower()
        self.searches.append(self.keywords)
        self.results = self.shop.search(self.keywords)
        self.page_number = 1
        self.page = "results"
        return Outcome(self._observation())

    def _click(self, element: str) -> Outcome:
        if self.page == "search":
            raise _Refused(
                "there is nothing to click on the search page; search with search[query]"
            )
        wanted = element.lower()
        label = next((b for b in self._buttons() if b.lower() == wanted), None)
        shown = self.visible_results() if self.page == "results" else ()
        if label is None and self.numbered_results and wanted.isdigit():
            number = int(wanted)
            if not 1 <= number <= len(shown):
                raise _Refused(f"this page shows products 1 to {len(shown)}, not {number}")
            label = shown[number - 1]
        if label is None:
            raise _Refused(f"there is no {element[:80]!r} to click on this page")
        if label == BACK_TO_SEARCH:
            self._go_to_search()
        elif label == NEXT_PAGE:
            self.page_number += 1
        elif label == PREV_PAGE:
            if self.page == "results":
                self.page_number -= 1
            elif self.page == "item":
                self.page, self.asin, self.options = "results", None, {}
            else:
                self.page = "item"
        elif label in (DESCRIPTION, FEATURES):
            self.page = label.lower()
        elif label == BUY_NOW:
            return self._buy()
        elif self.page == "results":
            self.page, self.asin, self.options = "item", label, {}
        else:
            self.options[self._option_name(label)] = label
        return Outcome(self._observation())

    def _buy(self) -> Outcome:
        assert self.goal is not None and self.asin is not None  # an item page is open
        product = self.shop.by_asin[self.asin]
        info = get_reward(product, self.goal, product.price, self.options)
        chosen = ", ".join(f"{k}: {v}" for k, v in self.options.items()) or "none"
        self.page = "done"
        observation = (
            f"Thank you for shopping with us! You bought [{product.asin}] {product.title} "
            f"for ${product.price:.2f} (options: {chosen}). Your score: {info.reward:.2f}."
        )
        return Outcome(
            observation,
            reward=info.reward,
            terminated=True,
            success=info.reward == 1.0,
            info={
                **info.as_dict(),
                "asin": product.asin,
                "goal_asin": self.goal.asin,
                "options": dict(self.options),
            },
        )

    def _available(self) -> str:
        if self.page == "search":
            return "search[your query], e.g. " + ", ".join(self.valid_actions())
        if self.page == "results" and self.numbered_results and self.results:
            buttons = [b for b in self._buttons() if b not in self.visible_results()]
            last = len(self.visible_results())
            return ", ".join(f"click[{b}]" for b in [*buttons, "1"]) + f" to click[{last}]"
        if self.page == "item":
            return self._listed_actions()
        return ", ".join(f"click[{label}]" for label in self._buttons())  # every id

    # ------------------------------------------------------------------ pages

    def _go_to_search(self) -> None:
        self.page, self.keywords, self.results = "search", "", ()
        self.page_number, self.asin, self.options = 1, None, {}

    def visible_results(self) -> tuple[str, ...]:
        """The product ids on the current results page."""
        start = (self.page_number - 1) * PAGE_SIZE
        return self.results[start : start + PAGE_SIZE]

    def has_next_page(self) -> bool:
        """Whether the results go on after the current page."""
        return self.page_number * PAGE_SIZE < len(self.results)

    def _product(self) -> Product:
        assert self.asin is not None  # on item, description and features pages
        return self.shop.by_asin[self.asin]

    def _option_name(self, value: str) -> str:
        """The option a value belongs to (the first, should two options share it)."""
        return next(name for name, values in self._product().options.items() if value in values)

    def _buttons(self) -> list[str]:
        """What can be clicked on the current page, in page order."""
        if self.page == "results":
            buttons = [BACK_TO_SEARCH]
            if self.page_number > 1:
                buttons.append(PREV_PAGE)
            if self.has_next_page():
                buttons.append(NEXT_PAGE)
            return buttons + list(self.visible_results())
        if self.page == "item":
            values = [v for vs in self._product().options.values() for v in vs]
            return [
                BACK_TO_SEARCH,
                PREV_PAGE,
                *dict.fromkeys(values),
                DESCRIPTION,
                FEATURES,
                BUY_NOW,
            ]
        if self.page in ("description", "features"):
            return [BACK_TO_SEARCH, PREV_PAGE]
        return []

    def _observation(self) -> str:
        assert self.goal is not None  # a task is loaded
        lines = [f"Instruction: {self.goal.instruction}", ""]
        if self.page == "search":
            lines += ["[Search page]", "Search the shop for products with search[your query]."]
        elif self.page == "results":
            lines += self._results_lines()
        elif self.page == "item":
            lines += self._item_lines()
        elif self.page == "description":
            product = self._product()
            lines += [f"[Description of {product.asin}] {product.title}", product.description]
        else:
            product = self._product()
            lines += [f"[Features of {product.asin}] {product.title}"]
            lines += [f"- {bullet}" for bullet in product.bullets]
        if self.page == "results" and self.results:  # the products are the action list
            header, products = lines[:3], lines[3:]
            return "\n".join([*header, f"Available actions: {self._listed_actions()}", *products])
        if self.page == "item":  # navigation, then the options and Buy Now
            return "\n".join([*lines[:4], f"Available actions: {self._listed_actions()}"])
        return "\n".join([*lines, "", f"Available actions: {self._listed_actions()}"])

    def _listed_actions(self) -> str:
        """The action list of a page, each clickable written once. Results and item
        pages show their products and options as click[...] lines, last, so that what
        the agent most likely wants next is nearest to its reply (small models copy the
        nearest pattern) and no id is written twice (an id costs about 8 tokens)."""
        if self.page == "search":
            return "search[your query]"
        if self.page == "results" and self.results:
            buttons = [b for b in self._buttons() if b not in self.visible_results()]
            what = "click[number] of" if self.numbered_results else "click[id] of"
            return ", ".join(f"click[{b}]" for b in buttons) + f", or {what} a product:"
        if self.page == "item":
            product = self._product()
            navigation = [BACK_TO_SEARCH, PREV_PAGE, DESCRIPTION, FEATURES]
            lines = [", ".join(f"click[{b}]" for b in navigation)]
            if product.options:
                lines[0] += ", then choose options and buy:"
            for name, values in product.options.items():
                chosen = f" (chosen: {self.options[name]})" if name in self.options else ""
                lines.append(f"{name}: {' '.join(f'click[{v}]' for v in values)}{chosen}")
            lines.append(f"click[{BUY_NOW}]")
            return "\n".join(lines)
        return ", ".join(f"click[{label}]" for label in self._buttons())

    def _results_lines(self) -> list[str]:
        if not self.results:
            return [f'[Results] No product matches "{self.keywords}". Try other words.']
        first = (self.page_number - 1) * PAGE_SIZE
        shown = self.visible_results()
        lines = [
            f'[Results for "{self.keywords}"] page {self.page_number}: results {first + 1}-'
            f"{first + len(shown)} of {len(self.results)}"
        ]
        for number, asin in enumerate(shown, 1):
            product = self.shop.by_asin[asin]
            clickable = f"click[{number}] [{asin}]" if self.numbered_results else f"click[{asin}]"
            lines.append(f"{clickable} {product.title} | {product.price_text}")
        return lines

    def _item_lines(self) -> list[str]:
        product = self._product()
        return [f"[Item {product.asin}] {product.title}", f"Price: {product.price_text}"]


def _shorten(observation: str, products: int = 3) -> str:
    """A page with its product list cut to the first `products`: enough to show the format."""
    lines = observation.splitlines()
    listed = [i for i, line in enumerate(lines) if re.match(r"click\[(\d+|\w{10})\] ", line)]
    if len(listed) <= products:
        return observation
    return "\n".join([*lines[: listed[products]], "..."])
