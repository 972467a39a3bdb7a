"""Generated problems where running code genuinely helps, with the program that solves
each one.

    problems = generated_problems(seed=0)
    p = problems["test"][0]
    p.question   # "Compute the sum of the digits of 87! (87 factorial)."
    p.answer     # "576"
    p.program    # "import math\\nprint(sum(map(int, str(math.factorial(87)))))"

Ten families: large arithmetic, modular powers, counting primes, divisors, binomial
coefficients, sums over ranges, digit sums of factorials, fractions, unit conversions
and several-step word problems. Each family has three phrasings: train and valid use
the first two, test only the third (held-out templates), and a problem's numbers are
drawn so that no question is in two splits. Answers are exact (integers or fractions in
lowest terms), except conversions, which ask for two decimals and accept +-0.01.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

SPLIT_SIZES = {"train": 2000, "valid": 200, "test": 200}


@dataclass(frozen=True)
class Problem:
    """A question, its answer as text, how close an answer must be, and a solution."""

    id: str
    question: str
    answer: str
    tolerance: float = 0.0
    """Largest accepted absolute error (0: exact)."""
    program: str = ""
    """A Python program that prints the answer (the scripted solver runs it)."""
    family: str = ""


@functools.cache
def _sieve(limit: int = 100_000) -> np.ndarray:
    sieve = np.ones(limit + 1, dtype=bool)
    sieve[:2] = False
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = False
    return sieve


def _primes_between(a: int, b: int) -> int:
    return int(_sieve()[a : b + 1].sum())


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


# Each family: (phrasings, draw) where draw(rng) gives (fields for the phrasing,
# answer, tolerance, program).
Family = tuple[tuple[str, str, str], Callable[[np.random.Generator], tuple[dict, str, float, str]]]


def _arithmetic(rng):
    a, b, c = (int(x) for x in rng.integers(10_000, 99_999, size=3))
    return {"a": a, "b": b, "c": c}, str(a * b - c), 0.0, f"print({a} * {b} - {c})"


def _modpow(rng):
    base, exp, mod = (
        int(rng.integers(2, 50)),
        int(rng.integers(100, 10_000)),
        int(rng.choice([997, 1000, 10**4 + 7, 12345])),
    )
    return (
        {"b": base, "e": exp, "m": mod},
        str(pow(base, exp, mod)),
        0.0,
        f"print(pow({base}, {exp}, {mod}))",
    )


def _primes(rng):
    a = int(rng.integers(100, 50_000))
    b = a + int(rng.integers(500, 20_000))
    program = (
        f"n = {b}\nsieve = [True] * (n + 1)\nsieve[0] = sieve[1] = False\n"
        "for i in range(2, int(n ** 0.5) + 1):\n"
        "    if sieve[i]:\n"
        "        sieve[i * i :: i] = [False] * len(sieve[i * i :: i])\n"
        f"print(sum(sieve[{a}:]))"
    )
    return {"a": a, "b": b}, str(_primes_between(a, b)), 0.0, program


def _divisor_sum(rng):
    n = int(rng.integers(1_000, 2_000_000))
    program = (
        f"n = {n}\nsmall = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]\n"
        "print(sum(set(small + [n // d for d in small])))"
    )
    return {"n": n}, str(sum(_divisors(n))), 0.0, program


def _binomial(rng):
    n = int(rng.integers(20, 80))
    k = int(rng.integers(3, n // 2))
    return {"n": n, "k": k}, str(math.comb(n, k)), 0.0, f"import math\nprint(math.comb({n}, {k}))"


def _range_sum(rng):
    n = int(rng.integers(1_000, 100_000))
    p, q = (int(x) for x in rng.choice([3, 4, 5, 7, 11, 13], size=2, replace=False))
    answer = sum(i for i in range(1, n) if i % p == 0 or i % q == 0)
    program = f"print(sum(i for i in range(1, {n}) if i % {p} == 0 or i % {q} == 0))"
    return {"n": n, "p": p, "q": q}, str(answer), 0.0, program


def _factorial_digits(rng):
    n = int(rng.integers(30, 400))
    answer = sum(map(int, str(math.factorial(n))))
    return (
        {"n": n},
        str(answer),
        0.0,
        f"import math\nprint(sum(map(int, str(math.factorial({n})))))",
    )


def _fractions(rng):
    a, c = (int(x) for x in rng.integers(1, 30, size=2))
    b, d, f = (int(x) for x in rng.integers(31, 97, size=3))
    e = int(rng.integers(1, 30))
    value = Fraction(a, b) + Fraction(c, d) - Fraction(e, f)
    program = f"from fractions import Fraction as F\nprint(F({a}, {b}) + F({c}, {d}) - F({e}, {f}))"
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}, str(value), 0.0, program


def _conversion(rng):
    km = int(rng.integers(50, 900))
    minutes = int(rng.integers(35, 600))
    speed = km * 1000 / (minutes * 60)
    program = f"print(round({km} * 1000 / ({minutes} * 60), 2))"
    return {"km": km, "min": minutes}, f"{speed:.2f}", 0.01, program


def _shopping(rng):
    pen, book = int(rng.integers(120, 990)), int(rng.integers(1_050, 4_990))  # in cents
    pens, books = int(rng.integers(3, 40)), int(rng.integers(2, 25))
    cost = pens * pen + books * book
    paid = (cost // 10_000 + 1) * 10_000
    fields = {
        "pen": f"{pen / 100:.2f}",
        "book": f"{book / 100:.2f}",
        "x": pens,
        "y": books,
        "paid": paid // 100,
    }
    change = Fraction(paid - cost, 100)
    answer = f"{float(change):.2f}"
    program = f"print(f'{{({paid} - ({pens} * {pen} + {books} * {book})) / 100:.2f}}')"
    return fields, answer, 0.0, program


FAMILIES: dict[str, Family] = {
    "arithmetic": (
        (
            "Compute {a} * {b} - {c}.",
            "What is the product of {a} and {b}, minus {c}?",
            "Multiply {a} by {b} and subtract {c} from the result. What number do you get?",
        ),
        _arithmetic,
    ),
    "modpow": (
        (
            "What is {b}^{e} mod {m}?",
            "Find the remainder when {b} to the power {e} is divided by {m}.",
            "Raise {b} to the {e}th power; what is left over after dividing by {m}?",
        ),
        _modpow,
    ),
    "primes": (
        (
            "How many prime numbers are there between {a} and {b}, inclusive?",
            "Count the primes p with {a} <= p <= {b}.",
            "How many integers from {a} to {b} (both included) are prime?",
        ),
        _primes,
    ),
    "divisors": (
        (
            "What is the sum of all positive divisors of {n}?",
            "Add up every positive integer that divides {n}. What is the total?",
            "Compute sigma({n}), the sum of the divisors of {n} (including 1 and {n}).",
        ),
        _divisor_sum,
    ),
    "binomial": (
        (
            "In how many ways can {k} items be chosen from {n} distinct items?",
            "Compute the binomial coefficient C({n}, {k}).",
            "A club has {n} members. How many different committees of {k} members can it form?",
        ),
        _binomial,
    ),
    "range_sum": (
        (
            "What is the sum of all positive integers below {n} that are multiples of {p} or {q}?",
            "Add up every number from 1 to {n} - 1 that is divisible by {p} or by {q}.",
            (
                "Find the total of the natural numbers less than {n} divisible by at least one "
                "of {p} and {q}."
            ),
        ),
        _range_sum,
    ),
    "factorial_digits": (
        (
            "Compute the sum of the digits of {n}! ({n} factorial).",
            "What is the digit sum of the factorial of {n}?",
            "Write out {n}! in full and add up its decimal digits. What is the sum?",
        ),
        _factorial_digits,
    ),
    "fractions": (
        (
            "Compute {a}/{b} + {c}/{d} - {e}/{f} as a fraction in lowest terms.",
            "What is {a}/{b} plus {c}/{d} minus {e}/{f}? Give a reduced fraction.",
            "Simplify {a}/{b} + {c}/{d} - {e}/{f} to a single fraction p/q in lowest terms.",
        ),
        _fractions,
    ),
    "conversion": (
        (
            (
                "A train covers {km} km in {min} minutes. What is its average speed in metres "
                "per second, to two decimal places?"
            ),
            "Convert an average speed of {km} km per {min} minutes to m/s (two decimals).",
            (
                "A cyclist rides {km} kilometres in {min} minutes. Express the mean speed in "
                "m/s, rounded to 2 decimal places."
            ),
        ),
        _conversion,
    ),
    "shopping": (
        (
            (
                "Pens cost ${pen} each and notebooks ${book} each. Ana buys {x} pens and {y} "
                "notebooks and pays with ${paid}. How much change, in dollars, does she get?"
            ),
            (
                "Ana pays ${paid} for {x} pens at ${pen} each and {y} notebooks at ${book} "
                "each. What change does she receive, in dollars?"
            ),
            (
                "A school buys {x} pens (${pen} apiece) and {y} notebooks (${book} apiece), "
                "handing over ${paid}. How many dollars come back as change?"
            ),
        ),
        _shopping,
    ),
}


def generated_problems(seed: int = 0) -> dict[str, list[Problem]]:
    """The problems of each split; the same seed, the same problems (built once)."""
    return _build(seed)


@functools.cache
def _build(seed: int) -> dict[str, list[Problem]]:
    rng = np.random.default_rng([seed, 14])
    seen: set[str] = set()
    out: dict[str, list[Problem]] = {}
    names = list(FAMILIES)
    for split, size in SPLIT_SIZES.items():
        problems: list[Problem] = []
        while len(problems) < size:
            family = names[len(problems) % len(names)]
            phrasings, draw = FAMILIES[family]
            fields, answer, tolerance, program = draw(rng)
            phrasing = phrasings[2] if split == "test" else phrasings[int(rng.integers(2))]
            question = phrasing.format(**fields)
            key = f"{family}:{sorted(fields.items())}"  # the same numbers: the same problem
            if key in seen:
                continue
            seen.add(key)
            problems.append(
                Problem(f"{split}-{len(problems)}", question, answer, tolerance, program, family)
            )
        out[split] = problems
    return out
