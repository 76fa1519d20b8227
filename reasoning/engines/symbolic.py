"""`symbolic` engine: an exact teacher for the `arith` task, in every role the toolkit asks a model to play.

It is the scripted engine with a policy that reads each request, solves the arith problem in it
exactly (`reasoning.tasks.arith`) and writes what the prompt asks for:

- a step-by-step solution ending the way the prompt wants (`\\boxed{}`, `#### N`, `Final Answer: N`);
- a MathFusion fusion of the prompt's two problems (sequential: the first answer feeds the second;
  parallel: their total; conditional: the larger), in the template's three sections;
- a Fusion-of-N fused answer (it re-solves the problem, whatever the candidates say);
- ThreadWeaver's rewriter (the `threadweaver/rewrite` template): the prompt's sequential solution
  in fork-join form, one thread per independent count (a chain stays as it is);
- a parallel-thinking trace: ThreadWeaver (one thread per person whose count is independent, then
  the join), Parallel-R1 (paths that each compute a part or check one another, a summary, a
  `Final Answer:` line), ParaThinker (P solutions in different orders, then the summary);
- a raw continuation at every point where a decoder calls a model: after `<Parallel>` or at
  `</Outlines>`, at `\\n<Thread>\\n{n}:`, at `<Path>`, at `<think{k}>`, at the summary, after
  "\\boxed{" (eval's budget forcing), so `reason decode` and `eval run --strategy ...` run end to end.

Which trace a chat request gets is the model name's style: `--model arith-teacher` (plain),
`arith-teacher:threadweaver`, `arith-teacher:parallel_r1`, `arith-teacher:parathinker`. A raw
continuation is read from the text itself (and from the decoder's stop strings at its first
request), whatever the style. `arith-teacher:STYLE:RATE` makes a share RATE of replies wrong
(an arithmetic slip in the final answer; for traces, half of them also lose a closing tag),
chosen by a hash of the request and sample, so filters, votes and rewards have something to catch
(whole traces, not decoder continuations, also lose a closing tag in half of those).
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from reasoning.engines.scripted import ScriptedEngine
from reasoning.tasks import arith
from reasoning.types import InputError, Request

STYLES = ("plain", "threadweaver", "parallel_r1", "parathinker")
TEACHER = "arith-teacher"
UNSOLVABLE = "I cannot read this as an arithmetic problem I know how to solve."
_HEADING = re.compile(r"^### (.+)$", re.M)
_PROBLEM_N = re.compile(r"Problem (\d):\n(.*?)(?:\n\n|$)", re.S)
_BRANCH_ID = re.compile(r"/(?:path|thread)/\d+/(\d+)$")
_THREAD_AT = re.compile(r"<Thread>\n(\d+):$")
_THINK_AT = re.compile(r"<think(\d+)>$")


def parse_teacher(model: str) -> tuple[str, float]:
    """(style, error rate) from `arith-teacher[:STYLE][:RATE]`."""
    parts = model.split(":")
    if parts[0] != TEACHER:
        raise InputError(f"--engine symbolic takes --model {TEACHER}[:STYLE][:RATE] (STYLE one of "
                         f"{', '.join(STYLES)}; RATE a share of wrong replies), got {model!r}")
    style = parts[1] if len(parts) > 1 and parts[1] else "plain"
    if style not in STYLES:
        raise InputError(f"unknown teacher style {style!r}; choose one of {', '.join(STYLES)}")
    try:
        rate = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        raise InputError(f"the error rate in {model!r} must be a number between 0 and 1") from None
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"the error rate in {model!r} must lie between 0 and 1")
    return style, rate


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


# ---------------------------------------------------------------------------- solutions as text

def person_lines(person: arith.Person, finals: dict[str, int], label: bool) -> list[str]:
    start = finals[person.fed_by] if person.fed_by else person.start
    prefix = f"{person.name}: " if label else ""
    lines = [f"{prefix}{before} {symbol} {operand} = {after}" for before, symbol, operand, after in person.steps(start)]
    return lines or [f"{prefix}{start}"]


def combine_line(problem: arith.ArithProblem, finals: dict[str, int], answer: int) -> str | None:
    values = [finals[p.name] for p in problem.people]
    if problem.combine == "total":
        return " + ".join(map(str, values)) + f" = {answer}"
    if problem.combine == "difference":
        return f"{values[0]} - {values[1]} = {answer}"
    if problem.combine == "largest":
        return f"the most is max({', '.join(map(str, values))}) = {answer}"
    return None


def ending(style: str, answer: int) -> str:
    if style == "hashes":
        return f"#### {answer}"
    if style == "final_answer":
        return f"Final Answer: {answer}"
    return f"The answer is \\boxed{{{answer}}}."


def ending_style(prompt: str) -> str:
    """How the prompt asks the answer to be written."""
    if "\\boxed" in prompt:
        return "boxed"
    if "####" in prompt:
        return "hashes"
    if "Final Answer" in prompt:
        return "final_answer"
    return "boxed"


def sequential_solution(problem: arith.ArithProblem, answer: int, end: str, order: list[int] | None = None) -> str:
    finals = problem.finals()
    people = [problem.people[i] for i in (order or range(len(problem.people)))]
    label = len(problem.people) > 1
    lines = [line for person in people for line in person_lines(person, finals, label)]
    joined = combine_line(problem, finals, answer)
    if joined:
        lines.append(joined)
    return "\n".join(lines + [ending(end, answer)])


# ---------------------------------------------------------------------------- the policy

class ArithTeacher:
    """The policy of the symbolic engine (see the module docstring)."""

    def __init__(self, style: str = "plain", error_rate: float = 0.0, num_paths: int = 2):
        self.style, self.error_rate, self.num_paths = style, error_rate, num_paths

    # ---- reading the request ----------------------------------------------------------------
    @staticmethod
    def split(request: Request) -> tuple[str, str]:
        """(the user's text, the assistant text written so far) of a chat or raw request."""
        if request.messages is not None:
            user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
            return user, ""
        text = request.prompt or ""
        at = text.rfind("<assistant>")
        if at < 0:
            return text, ""
        user_at = text.rfind("<user>", 0, at)
        user = text[user_at + len("<user>"):at].removesuffix("</user>") if user_at >= 0 else text[:at]
        return user, text[at + len("<assistant>"):]

    @staticmethod
    def question(user: str) -> str:
        at = user.rfind("Problem:")
        text = user[at + len("Problem:"):] if at >= 0 else user
        for marker in ("\n--- Candidate", "\n--- Path", "\nSequential solution:", "\n\n"):
            text = text.split(marker, 1)[0]
        return text.strip()

    def wrong(self, request: Request, index: int) -> bool:
        return self.error_rate > 0 and _unit(request.to_dict(), index, "slip") < self.error_rate

    def __call__(self, request: Request, index: int) -> tuple[str, str]:
        user, partial = self.split(request)
        slip = self.wrong(request, index)
        headings = _HEADING.findall(user)
        if len(headings) >= 3 and "Problem 1:" in user:
            return self.fusion(user, headings[-3:], slip), "stop"
        problem = arith.parse(self.question(user))
        if problem is None:
            return UNSOLVABLE, "stop"
        answer = problem.answer + (1 if slip else 0)
        end = ending_style(user)
        if "--- Candidate 1 ---" in user or "--- Path 1 ---" in user:  # a fusor or a summary: it re-solves
            return sequential_solution(problem, answer, end), "stop"
        if request.prompt is not None:  # a decoder's raw request, whichever method's prompt it carries
            return self.continuation(request, problem, answer, end, partial, index, slip), "stop"
        if "<Path>" in user and "<Parallel>" in user:  # Parallel-R1's cold-start instruction
            return self.full(problem, answer, "final_answer", "parallel_r1", slip), "stop"
        if "Sequential solution:" in user and "fork-join" in user:  # ThreadWeaver's rewriter (stage 2)
            return self.full(problem, answer, "boxed", "threadweaver", slip), "stop"
        return self.full(problem, answer, end, self.style, slip), "stop"

    # ---- whole responses --------------------------------------------------------------------
    def full(self, problem: arith.ArithProblem, answer: int, end: str, style: str, slip: bool) -> str:
        if style == "threadweaver" and problem.independent:
            text = self.tw_open(problem) + "".join(
                self.tw_thread_prefix(n, n == 1) + self.tw_thread(problem, n) + "</Thread>"
                for n in range(1, len(problem.people) + 1)) + "\n" + self.tw_join(problem, answer, end)
        elif style == "parallel_r1":
            paths = "".join(f"<Path>{self.r1_path(problem, i)}</Path>" for i in range(self.num_paths))
            text = (self.r1_open(problem) + "<Parallel>" + paths + "</Parallel>\n<Summary>"
                    + self.r1_summary(problem, answer) + "</Summary>" + self.r1_final(answer))
        elif style == "parathinker":
            paths = "".join(f"<think{k}>{self.pt_path(problem, answer, k)}</think{k}>"
                            for k in range(1, self.num_paths + 1))
            text = paths + "<summary>By analyzing multiple reasoning processes above, I concluded that: The final " \
                           f"answer is \\boxed{{{answer}}}.</summary>"
        else:
            return sequential_solution(problem, answer, end)
        if slip and _unit(text, "malformed") < 0.5:  # half of the wrong traces also lose a closing tag
            text = re.sub(r"</(?:Thread|Path|think1)>", "", text, count=1)
        return text

    # ---- ThreadWeaver pieces ----------------------------------------------------------------
    @staticmethod
    def tw_open(problem: arith.ArithProblem) -> str:
        # Short outlines: the fork's own cost is on the critical path, and it must stay below what it saves.
        items = "".join(f"<Outline>{n}: {p.name}</Outline>\n" for n, p in enumerate(problem.people, 1))
        return f"<Parallel>\n<Outlines>\n{items}</Outlines>"

    @staticmethod
    def tw_thread_prefix(n: int, first: bool) -> str:
        return ("\n" if first else "") + f"<Thread>\n{n}:"

    @staticmethod
    def tw_thread(problem: arith.ArithProblem, n: int) -> str:
        person = problem.people[(n - 1) % len(problem.people)]
        return " " + "\n".join(person_lines(person, problem.finals(), False)) + "\n"

    @staticmethod
    def tw_join(problem: arith.ArithProblem, answer: int, end: str) -> str:
        line = combine_line(problem, problem.finals(), answer)
        return "</Parallel>\n" + (line + "\n" if line else "") + ending(end, answer)

    # ---- Parallel-R1 pieces -----------------------------------------------------------------
    @staticmethod
    def r1_open(problem: arith.ArithProblem) -> str:
        if problem.independent:
            return "I will work out the parts on separate paths.\n"
        return "I will compute this twice to check it.\n"

    @staticmethod
    def r1_path(problem: arith.ArithProblem, index: int) -> str:
        finals = problem.finals()
        if problem.independent:  # path i computes person i's count (extra paths check another)
            person = problem.people[index % len(problem.people)]
            return " ".join(person_lines(person, finals, True))
        return " ".join(line for p in problem.people for line in person_lines(p, finals, True))

    @staticmethod
    def r1_summary(problem: arith.ArithProblem, answer: int) -> str:
        line = combine_line(problem, problem.finals(), answer)
        return (line + ". " if line else "") + f"So the answer is {answer}."

    @staticmethod
    def r1_final(answer: int) -> str:
        return f"\nFinal Answer: {answer}"

    # ---- ParaThinker pieces -----------------------------------------------------------------
    @staticmethod
    def pt_path(problem: arith.ArithProblem, answer: int, k: int) -> str:
        count = len(problem.people)
        order = [(i + k - 1) % count for i in range(count)] if problem.independent else list(range(count))
        return sequential_solution(problem, answer, "boxed", order)

    # ---- raw continuations (the decoders' calls) --------------------------------------------
    def continuation(self, request: Request, problem: arith.ArithProblem, answer: int, end: str, partial: str,
                     index: int, slip: bool) -> str:
        stops = set(request.params.stop)
        branch = _BRANCH_ID.search(request.id or "")
        branch_index = int(branch.group(1)) if branch else index
        if partial.endswith("\\boxed{"):  # eval's budget forcing asks for the answer
            return f"{answer}}}"
        if m := _THREAD_AT.search(partial):
            return self.tw_thread(problem, int(m.group(1))) + "</Thread>"
        if "</Thread>" in partial[-12:]:  # after the join: "</Thread>\n"
            return self.tw_join(problem, answer, end)
        if partial.endswith("<Path>"):
            return self.r1_path(problem, branch_index) + "</Path>"
        if partial.endswith("<Summary>"):
            return self.r1_summary(problem, answer) + "</Summary>"
        if "</Summary>" in partial:
            return self.r1_final(answer)
        if m := _THINK_AT.search(partial):
            k = int(m.group(1))
            return self.pt_path(problem, answer, k) + f"</think{k}>"
        if "<summary>" in partial:
            return f" \\boxed{{{answer}}}.</summary>"
        if "</Outlines>" in stops:  # ThreadWeaver's first main request
            if problem.independent:
                return self.tw_open(problem)
            return sequential_solution(problem, answer, end)
        if "<Parallel>" in stops:  # Parallel-R1's first main request
            return self.r1_open(problem) + "<Parallel>"
        return self.full(problem, answer, end, self.style, slip) if not partial else ending(end, answer)

    # ---- MathFusion -------------------------------------------------------------------------
    def fusion(self, user: str, names: list[str], slip: bool) -> str:
        sources = dict(_PROBLEM_N.findall(user))
        first = arith.parse(sources.get("1", "")) if "1" in sources else None
        second = arith.parse(sources.get("2", "")) if "2" in sources else None
        if first is None or second is None:
            return f"### {names[0]}\n{UNSOLVABLE}\n"
        kind = "sequential" if names[0].lower().startswith("element") else (
            "parallel" if names[0].lower().startswith("core") else "conditional")
        fused = fuse(first, second, kind)
        return (f"### {names[0]}\nBoth problems follow a count of {first.item} through a few steps.\n\n"
                f"### {names[1]}\nThe {kind} merge keeps both chains of steps.\n\n"
                f"### {names[2]}\n{fused.question}")


def fuse(first: arith.ArithProblem, second: arith.ArithProblem, kind: str) -> arith.ArithProblem:
    """A MathFusion fusion of two arith problems' main people (their first chains), in first's item.

    sequential: the second person starts with the first's end count (the answer feeds the
    next problem); parallel: their total; conditional: the larger of the two.
    """
    a, b = first.people[-1], second.people[-1]
    if a.fed_by or b.fed_by:  # fused problems are fused again from their last chains only
        a = arith.Person(a.name, first.finals()[a.name], (), ())
        b = arith.Person(b.name, second.finals()[b.name], (), ())
    if b.name == a.name:
        b = arith.Person(next(n for n in arith.NAMES if n != a.name), b.start, b.ops, b.verbs)
    if kind == "sequential":
        ops, verbs = _fit(b.ops, b.verbs, first.finals()[a.name])
        fed = arith.Person(b.name, 0, ops, verbs, fed_by=a.name)
        return arith.ArithProblem((a, fed), first.item, "feeds")
    return arith.ArithProblem((a, b), first.item, "total" if kind == "parallel" else "largest")


def _fit(ops, verbs, start: int) -> tuple[tuple, tuple]:
    """`ops` from a new start, with every subtraction small enough that no count drops below 1."""
    value, fitted, fitted_verbs = start, [], []
    for (kind, amount), verb in zip(ops, verbs):
        if kind == "sub" and amount >= value:
            if value <= 1:
                kind, amount, verb = "add", amount, arith.ADD_VERBS[0]
            else:
                amount = max(1, value // 2)
        value = value + amount if kind == "add" else value - amount if kind == "sub" else value * amount
        fitted.append((kind, amount))
        fitted_verbs.append(verb)
    return tuple(fitted), tuple(fitted_verbs)


class SymbolicEngine(ScriptedEngine):
    """The arith teacher as an engine: `make_engine("symbolic", "arith-teacher:threadweaver")`."""

    kind = "symbolic"

    def __init__(self, model: str = TEACHER, num_paths: int = 2, delay: float = 0.0, tokenizer: str | None = None,
                 **_: Any):
        style, rate = parse_teacher(model)
        super().__init__(model, policy=ArithTeacher(style, rate, num_paths), delay=delay, tokenizer=tokenizer)
        self.style, self.error_rate = style, rate


__all__ = ["ArithTeacher", "STYLES", "SymbolicEngine", "fuse", "parse_teacher", "sequential_solution"]
