"""Arithmetic word problems with exact answers, generated from templates with a fixed seed.

Multi-step on purpose (two to four operations), so that a 1.5B model makes real mistakes and tools,
voting and peer sharing have headroom to show. Answers are computed here with exact arithmetic.

    python bench/problems.py 40        # prints JSON lines
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from fractions import Fraction

Problem = dict[str, str]


def _fmt(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    return str(round(float(x), 4))


def _shop(r: random.Random) -> tuple[str, Fraction]:
    a, pa, b, pb, paid = r.randint(3, 19), r.randint(120, 990), r.randint(2, 12), r.randint(150, 2500), 0
    total = Fraction(a * pa + b * pb, 100)
    paid = (int(total) // 50 + 1) * 50
    return (f"A customer buys {a} notebooks at ${pa / 100:.2f} each and {b} pens at ${pb / 100:.2f} each, "
            f"and pays with ${paid}. How much change, in dollars, does she get?", paid - total)


def _trip(r: random.Random) -> tuple[str, Fraction]:
    s1, h1, s2, m2 = r.randint(45, 110), r.randint(2, 6), r.randint(30, 90), r.choice([15, 30, 45, 90, 150])
    return (f"A truck drives {h1} hours at {s1} km/h, then {m2} minutes at {s2} km/h. "
            f"How many kilometres does it drive in total?", Fraction(s1 * h1) + Fraction(s2 * m2, 60))


def _percent(r: random.Random) -> tuple[str, Fraction]:
    price, up, down = r.randint(80, 2400), r.choice([10, 15, 20, 25, 30]), r.choice([5, 10, 12, 20, 25])
    value = Fraction(price) * (100 + up) / 100 * (100 - down) / 100
    return (f"A bike costs ${price}. Its price rises by {up}% and then the new price is cut by {down}%. "
            f"What is the final price in dollars?", value)


def _area(r: random.Random) -> tuple[str, Fraction]:
    w, l_, cw, cl, price = r.randint(8, 40), r.randint(10, 60), r.randint(2, 6), r.randint(2, 8), r.randint(12, 45)
    area = w * l_ - cw * cl
    return (f"A floor is {w} m by {l_} m, with a {cw} m by {cl} m area that is not tiled. Tiles cost ${price} "
            f"per square metre. How much do the tiles cost in dollars?", Fraction(area * price))


def _average(r: random.Random) -> tuple[str, Fraction]:
    scores = [r.randint(55, 99) for _ in range(r.randint(4, 6))]
    extra = r.randint(60, 100)
    return (f"A student's test scores are {', '.join(map(str, scores))}. After one more test scored {extra}, "
            f"what is the new average score?", Fraction(sum(scores) + extra, len(scores) + 1))


def _tank(r: random.Random) -> tuple[str, Fraction]:
    cap, fill, leak, hours = r.randint(500, 5000), r.randint(40, 150), r.randint(5, 35), r.randint(3, 12)
    level = min(cap, (fill - leak) * hours)
    return (f"An empty tank holding {cap} litres is filled at {fill} litres per hour while it leaks {leak} "
            f"litres per hour. How many litres are in it after {hours} hours?", Fraction(level))


def _workers(r: random.Random) -> tuple[str, Fraction]:
    workers, days, per, extra_w = r.randint(3, 12), r.randint(4, 15), r.randint(20, 90), r.randint(2, 6)
    return (f"{workers} workers each assemble {per} parts a day for {days} days; then {extra_w} more workers "
            f"join for {days} more days at the same rate. How many parts are assembled in total?",
            Fraction(workers * per * days + (workers + extra_w) * per * days))


def _interest(r: random.Random) -> tuple[str, Fraction]:
    p, rate, years = r.randint(10, 90) * 100, r.choice([2, 3, 4, 5, 6, 8]), r.randint(2, 4)
    value = Fraction(p) * Fraction(100 + rate, 100) ** years
    return (f"${p} is invested at {rate}% interest per year, compounded yearly. What is it worth after {years} "
            f"years, in dollars, rounded to the cent?", Fraction(round(value * 100), 100))


TEMPLATES: list[Callable[[random.Random], tuple[str, Fraction]]] = [
    _shop, _trip, _percent, _area, _average, _tank, _workers, _interest]


def generate(count: int, seed: int = 2026) -> list[Problem]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        question, answer = TEMPLATES[i % len(TEMPLATES)](rng)
        out.append({"id": f"arith-{seed}-{i}", "question": question, "answer": _fmt(answer)})
    return out


if __name__ == "__main__":
    for row in generate(int(sys.argv[1]) if len(sys.argv) > 1 else 40):
        print(json.dumps(row))
