"""`arith`: procedural arithmetic word problems with exact integer answers, small enough for a CPU to learn.

Each problem follows one or more people's counts of an item through 2-6 operations (buy, lose,
double, ...), then asks for one person's count (a pure chain: nothing to parallelise) or combines
several people's counts (total, difference, the largest): their sub-computations are independent,
so parallel thinking genuinely shortens the critical path. This is the kind of toy task the papers'
authors check their methods on (ThreadWeaver on multiplication, APR on Countdown).

    problems = generate(level=2, count=200, split="test")
    problems[0].question   # "Omar has 6 pencils. Omar buys 4 more. Lena has 9 pencils. ... in total?"
    problems[0].answer     # 17
    parse(problems[0].question).answer == 17     # the text alone determines the problem

Levels set the number of people, of operations per person, the number range and the operations.
The splits never share a question: "train" skips every question of the "test" split of its level.
The text is generated from fixed templates, so `parse` reads any question back exactly; that is
what the symbolic teacher (`reasoning.engines.symbolic`) solves.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

from reasoning.types import InputError

NAMES = ("Omar", "Lena", "Ravi", "Mia", "Tom", "Ana", "Kofi", "Yuki", "Sara", "Ivan", "Nora", "Eli")
ITEMS = ("pencils", "apples", "stamps", "marbles", "books", "coins", "shells", "cards", "beads", "plums")
ADD_VERBS = ("buys", "finds", "gets", "picks up")
SUB_VERBS = ("gives away", "loses", "sells", "uses")
SCALE_VERBS = {2: "doubles", 3: "triples"}


@dataclass(frozen=True)
class Level:
    """How hard a level is."""

    people: tuple[int, ...]  # how many people a problem may follow
    steps: tuple[int, int]  # operations per person, inclusive range
    start_max: int  # start values lie in 1..start_max
    operand_max: int  # added / subtracted amounts lie in 1..operand_max
    value_max: int  # no count ever exceeds this
    scales: tuple[int, ...]  # multipliers allowed (doubles, triples)
    combines: tuple[str, ...]  # how several people's counts are combined


LEVELS = {
    1: Level(people=(1,), steps=(2, 2), start_max=20, operand_max=20, value_max=99, scales=(), combines=()),
    2: Level(people=(1, 2), steps=(2, 3), start_max=50, operand_max=50, value_max=199, scales=(2,),
             combines=("total", "difference")),
    3: Level(people=(1, 2, 3), steps=(2, 4), start_max=99, operand_max=99, value_max=299, scales=(2, 3),
             combines=("total", "difference", "largest")),
    4: Level(people=(2, 3), steps=(3, 6), start_max=99, operand_max=99, value_max=499, scales=(2, 3),
             combines=("total", "difference", "largest")),
}


@dataclass(frozen=True)
class Person:
    """One person's chain: a start count and the operations applied to it, in order."""

    name: str
    start: int
    ops: tuple[tuple[str, int], ...]  # ("add" | "sub" | "mul", amount)
    verbs: tuple[str, ...] = ()  # the verb each operation is written with
    fed_by: str | None = None  # sequential fusion: the start is the end count of this person

    def steps(self, start: int | None = None) -> list[tuple[int, str, int, int]]:
        """(before, symbol, operand, after) for every operation."""
        value = self.start if start is None else start
        out = []
        for kind, amount in self.ops:
            after = value + amount if kind == "add" else value - amount if kind == "sub" else value * amount
            out.append((value, {"add": "+", "sub": "-", "mul": "*"}[kind], amount, after))
            value = after
        return out


@dataclass(frozen=True)
class ArithProblem:
    """One problem: its people, the item they count, and how their counts give the answer."""

    people: tuple[Person, ...]
    item: str
    combine: str = "none"  # none (one person) | total | difference | largest | feeds (a chain over people)
    level: int = 0
    id: str = field(default="", compare=False)

    # ---- the answer -------------------------------------------------------------------------
    def finals(self) -> dict[str, int]:
        """Each person's count after their operations (a fed person starts at their feeder's end)."""
        out: dict[str, int] = {}
        for person in self.people:
            start = out[person.fed_by] if person.fed_by else person.start
            steps = person.steps(start)
            out[person.name] = steps[-1][3] if steps else start
        return out

    @property
    def answer(self) -> int:
        finals = self.finals()
        values = [finals[p.name] for p in self.people]
        if self.combine == "total":
            return sum(values)
        if self.combine == "difference":
            return values[0] - values[1]
        if self.combine == "largest":
            return max(values)
        return values[-1]

    @property
    def independent(self) -> bool:
        """Whether the people's sub-computations can run in parallel (no one feeds another)."""
        return len(self.people) > 1 and self.combine in ("total", "difference", "largest")

    # ---- the text ---------------------------------------------------------------------------
    @property
    def question(self) -> str:
        sentences = []
        for person in self.people:
            if person.fed_by:
                sentences.append(f"{person.name} starts with as many {self.item} as {person.fed_by} ends with.")
            else:
                sentences.append(f"{person.name} has {person.start} {self.item}.")
            for (kind, amount), verb in zip(person.ops, person.verbs or _default_verbs(person.ops)):
                if kind == "add":
                    sentences.append(f"{person.name} {verb} {amount} more.")
                elif kind == "sub":
                    sentences.append(f"{person.name} {verb} {amount}.")
                else:
                    sentences.append(f"{person.name} {verb} the {self.item}.")
        names = [p.name for p in self.people]
        if self.combine == "total":
            who = ", ".join(names[:-1]) + f" and {names[-1]}"
            sentences.append(f"How many {self.item} do {who} have in total?")
        elif self.combine == "difference":
            sentences.append(f"How many more {self.item} does {names[0]} have than {names[1]}?")
        elif self.combine == "largest":
            sentences.append(f"Of {', '.join(names[:-1])} and {names[-1]}, how many {self.item} does the one "
                             "with the most have?")
        else:
            sentences.append(f"How many {self.item} does {names[-1]} have now?")
        return " ".join(sentences)

    def to_record(self) -> dict:
        """A flat JSONL/`datasets` record: question, answer (a string, like every benchmark's), metadata."""
        return {"id": self.id, "question": self.question, "answer": str(self.answer), "level": self.level,
                "combine": self.combine, "people": len(self.people), "independent": self.independent}


def _default_verbs(ops) -> tuple[str, ...]:
    return tuple(ADD_VERBS[0] if k == "add" else SUB_VERBS[0] if k == "sub" else SCALE_VERBS[a] for k, a in ops)


# ---------------------------------------------------------------------------- generation

def _person(rng: random.Random, name: str, level: Level, start: int | None = None) -> Person:
    first = start if start is not None else rng.randint(1, level.start_max)
    value = first
    ops, verbs = [], []
    for _ in range(rng.randint(*level.steps)):
        choices = ["add", "sub"] + (["mul"] if level.scales and value * min(level.scales) <= level.value_max else [])
        weights = [45, 40] + ([15] if len(choices) == 3 else [])
        kind = rng.choices(choices, weights)[0]
        if kind == "sub" and value <= 1:
            kind = "add"
        if kind == "add":
            amount = rng.randint(1, max(1, min(level.operand_max, level.value_max - value)))
            verbs.append(rng.choice(ADD_VERBS))
            value += amount
        elif kind == "sub":
            amount = rng.randint(1, min(level.operand_max, value - 1))
            verbs.append(rng.choice(SUB_VERBS))
            value -= amount
        else:
            amount = rng.choice([s for s in level.scales if value * s <= level.value_max])
            verbs.append(SCALE_VERBS[amount])
            value *= amount
        ops.append((kind, amount))
    return Person(name, first, tuple(ops), tuple(verbs))


def make_problem(rng: random.Random, level: int) -> ArithProblem:
    """One random problem of `level` (see LEVELS)."""
    spec = LEVELS[level]
    count = rng.choice(spec.people)
    combine = rng.choice(spec.combines) if count > 1 else "none"
    if combine == "difference":  # a difference is between two people
        count = 2
    people = tuple(_person(rng, name, spec) for name in rng.sample(NAMES, count))
    problem = ArithProblem(people, rng.choice(ITEMS), combine, level)
    if combine == "difference":  # the question asks how many more the first has: put the larger first
        finals = problem.finals()
        if finals[people[0].name] < finals[people[1].name]:
            problem = ArithProblem((people[1], people[0]), problem.item, combine, level)
    return problem


def question_id(question: str) -> str:
    return hashlib.sha256(question.encode()).hexdigest()[:12]


def generate(level: int = 2, count: int = 200, split: str = "test", seed: int = 0) -> list[ArithProblem]:
    """`count` distinct problems of `level` from `split` (test and train never share a question)."""
    if level not in LEVELS:
        raise InputError(f"arith level {level!r} does not exist; choose one of {', '.join(map(str, LEVELS))}")
    if split not in ("train", "test"):
        raise InputError(f"arith split must be train or test, got {split!r}")
    if count < 0:
        raise InputError(f"count must be >= 0, got {count}")
    if split == "test" and count > TEST_SIZE:
        raise InputError(f"the arith test split of each level holds {TEST_SIZE} problems; asked for {count}")
    # Train never holds a question of the test split: the one `eval run --benchmark arith` reads (seed 0),
    # nor the one of its own seed.
    banned = set() if split == "test" else {
        p.question for s in {0, seed} for p in generate(level, TEST_SIZE, "test", s)}
    rng = random.Random(f"arith/{level}/{split}/{seed}")
    out, seen = [], set(banned)
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise InputError(f"arith level {level} has too few distinct problems for {count} in {split}")
        problem = make_problem(rng, level)
        if problem.question in seen:
            continue
        seen.add(problem.question)
        out.append(ArithProblem(problem.people, problem.item, problem.combine, level,
                                id=f"arith{level}-{split}-{question_id(problem.question)}"))
    return out


TEST_SIZE = 1000  # the test split of each level: its first 1000 problems, never in train


# ---------------------------------------------------------------------------- reading a question back

_HAS = re.compile(r"^([A-Z][a-z]+) has (\d+) ([a-z]+)\.$")
_FED = re.compile(r"^([A-Z][a-z]+) starts with as many ([a-z]+) as ([A-Z][a-z]+) ends with\.$")
_ADD = re.compile(r"^([A-Z][a-z]+) (" + "|".join(ADD_VERBS) + r") (\d+) more\.$")
_SUB = re.compile(r"^([A-Z][a-z]+) (" + "|".join(SUB_VERBS) + r") (\d+)\.$")
_MUL = re.compile(r"^([A-Z][a-z]+) (doubles|triples) the ([a-z]+)\.$")
_TOTAL = re.compile(r"^How many ([a-z]+) do (.+) have in total\?$")
_DIFF = re.compile(r"^How many more ([a-z]+) does ([A-Z][a-z]+) have than ([A-Z][a-z]+)\?$")
_LARGEST = re.compile(r"^Of (.+), how many ([a-z]+) does the one with the most have\?$")
_ONE = re.compile(r"^How many ([a-z]+) does ([A-Z][a-z]+) have now\?$")
_SENTENCE = re.compile(r"[^.?]+[.?]")


def parse(text: str) -> ArithProblem | None:
    """The problem a question states (None when the text is not an arith question)."""
    sentences = [s.strip() for s in _SENTENCE.findall(" ".join(text.split()))]
    people: dict[str, dict] = {}
    order: list[str] = []
    item, combine, asked = None, None, None
    for sentence in sentences:
        if m := _HAS.match(sentence):
            name, start, item = m.group(1), int(m.group(2)), m.group(3)
            people[name] = {"start": start, "ops": [], "verbs": [], "fed_by": None}
            order.append(name)
        elif m := _FED.match(sentence):
            name, item, feeder = m.groups()
            people[name] = {"start": 0, "ops": [], "verbs": [], "fed_by": feeder}
            order.append(name)
        elif (m := _ADD.match(sentence)) and m.group(1) in people:
            people[m.group(1)]["ops"].append(("add", int(m.group(3))))
            people[m.group(1)]["verbs"].append(m.group(2))
        elif (m := _SUB.match(sentence)) and m.group(1) in people:
            people[m.group(1)]["ops"].append(("sub", int(m.group(3))))
            people[m.group(1)]["verbs"].append(m.group(2))
        elif (m := _MUL.match(sentence)) and m.group(1) in people:
            people[m.group(1)]["ops"].append(("mul", 2 if m.group(2) == "doubles" else 3))
            people[m.group(1)]["verbs"].append(m.group(2))
        elif m := _TOTAL.match(sentence):
            combine, asked = "total", None
        elif m := _DIFF.match(sentence):
            combine, asked = "difference", [m.group(2), m.group(3)]
        elif m := _LARGEST.match(sentence):
            combine, asked = "largest", None
        elif m := _ONE.match(sentence):
            combine, asked = ("feeds" if any(p["fed_by"] for p in people.values()) else "none"), [m.group(2)]
    if not people or combine is None or item is None:
        return None
    if asked and any(name not in people for name in asked):
        return None
    if any(p["fed_by"] is not None and (p["fed_by"] not in order or order.index(p["fed_by"]) >= order.index(n))
           for n, p in people.items()):
        return None  # a start that refers to someone not counted before
    names = asked if combine == "difference" else order
    if combine in ("none", "feeds"):
        names = order if combine == "feeds" else asked
    built = tuple(Person(n, people[n]["start"], tuple(people[n]["ops"]), tuple(people[n]["verbs"]),
                         people[n]["fed_by"]) for n in names)
    return ArithProblem(built, item, combine)


def solve(text: str) -> int | None:
    """The exact answer of an arith question (None when the text is not one)."""
    problem = parse(text)
    return problem.answer if problem is not None else None


__all__ = ["ArithProblem", "LEVELS", "Level", "Person", "generate", "make_problem", "parse", "solve"]
