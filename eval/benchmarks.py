"""Benchmarks: where each one lives (Hugging Face Hub or a local folder) and how to read its gold.

Registry (`BENCHMARKS`), with the Hub dataset each loads by default:

| name    | Hub dataset (config, split)              | local file (under --data-dir)  | size |
|---------|------------------------------------------|--------------------------------|-----:|
| gsm8k   | `openai/gsm8k` ("main", test)            | `gsm8k/test.jsonl`             | 1319 |
| math500 | `HuggingFaceH4/MATH-500` (test)          | `math500/test.jsonl`           |  500 |
| aime24  | `HuggingFaceH4/aime_2024` (train)        | `aime24/test.jsonl`            |   30 |
| aime25  | `yentinglin/aime_2025` (train)           | `aime25/test.jsonl`            |   30 |
| amc23   | `math-ai/amc23` (test)                   | `amc23/test.jsonl`             |   40 |

Choices: aime25 uses `yentinglin/aime_2025` because lighteval's `aime25` task uses it, so our
numbers line up with lighteval/open-r1 reports (`opencompass/AIME2025` splits the two exams into
two configs). amc23 uses `math-ai/amc23`, the 40 free-response AMC 12 2023 problems of the
Qwen2.5-Math evaluation set (the same 40 as the local file); `AI-MO/aimo-validation-amc` mixes
2022 and 2023 and would need filtering by url.

The local layout is the one in `../shared/data` (see its README): one JSON object per line.
Pass `data_dir` (the CLI's `--data-dir`) to read it; without it the Hub copy is downloaded with
`datasets.load_dataset`.

Gold answers are parsed per format (`parse_gold`):
- `gsm8k`: the text after the last `####`, stripped, thousands commas removed ("1,450" -> "1450").
- `math`: the `answer` field when the record has one, else the content of the last `\\boxed{}`
  of the solution (braces matched, so `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`).
- `aime`: an integer, zero padding dropped ("007" -> "7").
- `amc`: a number; whole floats written as integers ("27.0" -> "27", -1.0 -> "-1").
- `auto`: by the value: `####` -> gsm8k, `\\boxed` -> math, a number -> canonical number, other
  text as it is.
A missing or unparseable gold never raises: the problem gets `gold=None` and a `gold_error`
saying where and why, and the run reports, excludes and counts it.

Problem ids are stable across runs and across reorderings of the file: `<benchmark>-<own id>`
when the record has its own id (`unique_id` in MATH-500, `id` in AIME 2024 and AMC 2023), else
`<benchmark>-<first 12 hex of sha256 of the question, whitespace collapsed>` (GSM8K, AIME 2025).
A line index would shift when a file is filtered or reordered; a content hash does not. Equal
ids within one file (duplicate questions) get `-2`, `-3`, ... in file order.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.grading.boxed import last_boxed
from eval.records import Problem
from reasoning.jsonl import parse_jsonl
from reasoning.types import InputError

GOLD_FORMATS = ("auto", "gsm8k", "math", "aime", "amc")
GENERIC_HELP = ("for any other JSONL file use --data FILE --question-field Q --answer-field A "
                "[--id-field I] [--gold-format auto|gsm8k|math|aime|amc] [--choices-field C]")
# An "auto" gold with this many words of prose is a worked solution, not an answer.
MAX_AUTO_GOLD_WORDS = 12

_INT = re.compile(r"[+-]?\d+")
_DEC = re.compile(r"[+-]?(\d+\.\d*|\.\d+)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


# --------------------------------------------------------------------------- gold parsing

def canonical_number(value: Any) -> str | None:
    """A number as a plain string ("27.0" -> "27", "007" -> "7", "2.50" -> "2.5"); None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(value, str):
        return None
    s = value.strip().strip("$").strip()
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    sign = "-" if s.startswith("-") else ""
    body = s.lstrip("+-")
    if _INT.fullmatch(s):
        body = body.lstrip("0") or "0"
    elif _DEC.fullmatch(s):
        whole, frac = body.split(".")
        whole = whole.lstrip("0") or "0"
        frac = frac.rstrip("0")
        body = f"{whole}.{frac}" if frac else whole
    else:
        return None
    return "0" if body == "0" else sign + body


def _text(value: Any) -> str | None:
    """A gold value as stripped text (numbers via canonical_number); None if empty or unusable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return canonical_number(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _describe(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _unbox(value: Any) -> tuple[Any, str | None]:
    """If the value is text holding a \\boxed{}, its last box; else the value unchanged."""
    if isinstance(value, str) and ("\\boxed" in value or "\\fbox" in value):
        inner = last_boxed(value)
        if inner is None:
            return None, f"no complete \\boxed{{}} in {_describe(value)}"
        if not inner:
            return None, "the last \\boxed{} is empty"
        return inner, None
    return value, None


def _gold_gsm8k(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"expected the solution text ending in '#### N', got {_describe(value)}"
    if "####" not in value:
        return None, "no '####' line in the answer text"
    final = value.rsplit("####", 1)[1].strip().replace(",", "")
    if not final:
        return None, "nothing after the last '####'"
    return canonical_number(final) or final, None


def _gold_math(value: Any) -> tuple[str | None, str | None]:
    value, err = _unbox(value)
    if err:
        return None, err
    gold = _text(value)
    return (gold, None) if gold is not None else (None, f"empty or unusable answer {_describe(value)}")


def _gold_aime(value: Any) -> tuple[str | None, str | None]:
    value, err = _unbox(value)
    if err:
        return None, err
    num = canonical_number(value)
    if num is None or not _INT.fullmatch(num):
        return None, f"AIME answer {_describe(value)} is not an integer"
    return num, None


def _gold_amc(value: Any) -> tuple[str | None, str | None]:
    value, err = _unbox(value)
    if err:
        return None, err
    num = canonical_number(value)
    if num is not None:
        return num, None
    text = _text(value)  # AMC golds from other sources may be LaTeX such as \frac{1}{2}
    return (text, None) if text is not None else (None, f"empty or unusable answer {_describe(value)}")


def _gold_auto(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str) and "####" in value:
        return _gold_gsm8k(value)
    value, err = _unbox(value)
    if err:
        return None, err
    num = canonical_number(value)
    if num is not None:
        return num, None
    text = _text(value)
    if text is not None and len(re.findall(r"[A-Za-z]{2,}", re.sub(r"\$[^$]*\$|\\[A-Za-z]+", " ", text))) \
            > MAX_AUTO_GOLD_WORDS:
        return None, (f"{_describe(value)} reads as a worked solution, not a final answer (no \\boxed{{}} or "
                      "'####' to take it from); pass --answer-field with the field that holds the answer")
    return (text, None) if text is not None else (None, f"empty or unusable answer {_describe(value)}")


def _gold_list(parser, values: list[Any]) -> tuple[list[str] | str | None, str | None]:
    """Several gold answers (a list value): each parsed; one item is that item."""
    parts = []
    for k, item in enumerate(values):
        gold, err = parser(item)
        if err:
            return None, f"item {k}: {err}"
        parts.append(gold)
    if not parts:
        return None, "the answer list is empty"
    return (parts[0] if len(parts) == 1 else parts), None


GOLD_PARSERS: dict[str, Callable[[Any], tuple[str | None, str | None]]] = {
    "auto": _gold_auto,
    "gsm8k": _gold_gsm8k,
    "math": _gold_math,
    "aime": _gold_aime,
    "amc": _gold_amc,
}


def parse_gold(value: Any, gold_format: str = "auto") -> tuple[str | None, str | None]:
    """(gold, None) or (None, why it could not be read) for one raw answer value."""
    if gold_format not in GOLD_PARSERS:
        raise InputError(f"unknown gold format {gold_format!r}; choose one of {', '.join(GOLD_FORMATS)}")
    if value is None:
        return None, "the answer is null"
    return _parse_with(GOLD_PARSERS[gold_format], value)


def _parse_with(parser, value: Any) -> tuple[Any, str | None]:
    """One answer value through a gold parser; a list value is several answers, each parsed."""
    if isinstance(value, (list, tuple)):
        return _gold_list(parser, list(value))
    return parser(value)


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: its Hub copy, its file in the local layout, and how to read its records."""

    name: str
    hub_id: str
    hub_config: str | None
    hub_split: str
    local_path: str  # relative to --data-dir
    question_field: str  # in the local file
    answer_field: str  # raw gold (see gold_format)
    gold_format: str  # a key of GOLD_PARSERS
    id_field: str | None  # the dataset's own id; None -> hash of the question
    description: str
    size: int | None = None  # records in the full test set
    solution_field: str | None = None  # where to find \boxed{} when answer_field is absent or empty
    hub_question_field: str | None = None  # when the Hub copy names it differently
    hub_answer_field: str | None = None
    hub_id_field: str | None = None  # "" -> no id field on the Hub (hash instead)
    reference_field: str | None = None  # a worked solution to keep in meta["solution"] (seed pools)

    @property
    def gold_parser(self) -> Callable[[Any], tuple[str | None, str | None]]:
        return GOLD_PARSERS[self.gold_format]

    def fields(self, hub: bool) -> tuple[str, str, str | None]:
        """(question, answer, id) field names for the Hub copy or the local file."""
        if not hub:
            return self.question_field, self.answer_field, self.id_field
        id_field = self.id_field if self.hub_id_field is None else (self.hub_id_field or None)
        return (self.hub_question_field or self.question_field, self.hub_answer_field or self.answer_field,
                id_field)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            name="gsm8k", hub_id="openai/gsm8k", hub_config="main", hub_split="test",
            local_path="gsm8k/test.jsonl", question_field="question", answer_field="answer",
            gold_format="gsm8k", id_field=None, size=1319,
            description="GSM8K test: grade-school word problems; gold after the last '####'.",
        ),
        BenchmarkSpec(
            name="math500", hub_id="HuggingFaceH4/MATH-500", hub_config=None, hub_split="test",
            local_path="math500/test.jsonl", question_field="problem", answer_field="answer",
            solution_field="solution", gold_format="math", id_field="unique_id", size=500,
            description="MATH-500 (PRM800K test subset of MATH); LaTeX golds, level 1-5 and subject.",
        ),
        BenchmarkSpec(
            name="aime24", hub_id="HuggingFaceH4/aime_2024", hub_config=None, hub_split="train",
            local_path="aime24/test.jsonl", question_field="problem", answer_field="answer",
            gold_format="aime", id_field="id", size=30,
            description="AIME 2024 I and II; integer answers 0-999 (zero padding dropped).",
        ),
        BenchmarkSpec(
            name="aime25", hub_id="yentinglin/aime_2025", hub_config=None, hub_split="train",
            local_path="aime25/test.jsonl", question_field="question", answer_field="answer",
            gold_format="aime", id_field=None, size=30,
            hub_question_field="problem", hub_id_field="",
            description="AIME 2025 I and II (lighteval's Hub copy); integer answers 0-999.",
        ),
        BenchmarkSpec(
            name="amc23", hub_id="math-ai/amc23", hub_config=None, hub_split="test",
            local_path="amc23/test.jsonl", question_field="problem", answer_field="answer",
            gold_format="amc", id_field="id", size=40,
            hub_question_field="question",
            description="AMC 12 2023 (A and B), 40 problems rewritten as free response; numeric golds.",
        ),
    )
}


# Generated tasks: no file, no Hub; a level picks the difficulty, the split the seed.
GENERATED = {"arith": "procedural arithmetic word problems with exact answers (levels 1-4; reasoning.tasks.arith)"}


def describe_benchmarks() -> str:
    """One line per benchmark, for --help and error messages."""
    return "\n".join([f"  {s.name:<8} {s.description} [hub {s.hub_id}; local <data-dir>/{s.local_path}]"
                      for s in BENCHMARKS.values()] + [f"  {name:<8} {text} [generated: --level N]"
                                                       for name, text in GENERATED.items()])


def load_arith(level: int = 2, limit: int | None = None, split: str = "test") -> list[Problem]:
    """The arith task as Problems: the first `limit` (default 200) problems of a level's split."""
    from reasoning.tasks.arith import generate

    _check_limit(limit)
    count = 200 if limit is None else limit
    return [Problem(id=p.id, question=p.question, gold=str(p.answer), benchmark="arith",
                    meta={"level": level, "combine": p.combine, "people": len(p.people), "independent": p.independent})
            for p in generate(level, count, split)]


# --------------------------------------------------------------------------- reading

def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a JSONL file, or each item of a JSON array."""
    if not path.exists():
        raise InputError(f"data file {path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass the .jsonl file itself")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); fix the file") from None
        rows = []
        for i, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise InputError(f"{path}: item {i} is {type(item).__name__}, expected a JSON object")
            rows.append((i, item))
        return rows
    return parse_jsonl(text, path)


_MISSING = object()


def _get(row: dict[str, Any], field: str) -> Any:
    """row[field], or a dotted path into nested objects ("meta.answer"); _MISSING when absent."""
    if field in row:
        return row[field]
    if "." in field:
        cur: Any = row
        for part in field.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return _MISSING
            cur = cur[part]
        return cur
    return _MISSING


def question_hash(question: str) -> str:
    """First 12 hex digits of sha256 of the question with whitespace runs collapsed."""
    return hashlib.sha256(" ".join(question.split()).encode("utf-8")).hexdigest()[:12]


def _level(value: Any) -> Any:
    """MATH level as an int (5, "5" or "Level 5" -> 5); other values unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"(?:level\s*)?(\d+)", value.strip(), flags=re.IGNORECASE)
        if m:
            return int(m.group(1))
    return value


def _question(row: dict[str, Any], question_field: str, where: str) -> str:
    """The problem text: one field, several fields joined in order ("body,question"), or a template
    naming fields in braces ("{body} {question}")."""
    if "{" in question_field:
        names = re.findall(r"\{([^{}]+)\}", question_field)
        values = {}
        for name in names:
            value = _get(row, name)
            if value is _MISSING:
                raise InputError(f"{where}: --question-field template names {name!r}, which this record lacks "
                                 f"(fields: {sorted(row)})")
            values[name] = value
        return re.sub(r"\{([^{}]+)\}", lambda m: str(values[m.group(1)]), question_field).strip()
    names = [n.strip() for n in question_field.split(",") if n.strip()] if "," in question_field \
        else [question_field]
    parts = []
    for name in names:
        value = _get(row, name)
        if value is _MISSING:
            raise InputError(f"{where}: no field {name!r} (fields: {sorted(row)}); "
                             "pass --question-field with the field that holds the problem text")
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: field {name!r} must be non-empty text, got {_describe(value)}; "
                             "fix that record or remove it")
        parts.append(value.strip())
    return " ".join(parts)


_LETTERS = "ABCDEFGHIJ"


def _with_choices(gold: Any, choices: Any) -> tuple[Any, str | None]:
    """A letter (or 0-based index) gold with the benchmark's choices -> "(D) 42": letter or text is right."""
    if isinstance(choices, dict):  # {"A": "12", "B": "42"}
        choices = [choices[k] for k in sorted(choices)]
    if not isinstance(choices, (list, tuple)) or not choices:
        return gold, None
    key = str(gold).strip().strip("()").strip() if gold is not None else ""
    texts = [str(c).strip() for c in choices]
    if str(gold).strip() in texts:  # the gold is a choice's own text: that choice
        index = texts.index(str(gold).strip())
    elif key.isdigit() and int(key) < len(choices):
        index = int(key)
    elif len(key) == 1 and key.upper() in _LETTERS[: len(choices)]:
        index = _LETTERS.index(key.upper())
    else:
        return gold, None  # the gold is already the answer's text
    return f"({_LETTERS[index]}) {str(choices[index]).strip()}", None


def _build(rows: list[tuple[int, dict[str, Any]]], *, name: str, where: Callable[[int], str],
           question_field: str, answer_field: str, id_field: str | None, gold_format: str,
           solution_field: str | None = None, answer_required: bool = False,
           reference_field: str | None = None, choices_field: str | None = None) -> list[Problem]:
    """Turn (position, record) pairs into Problems (the shared core of every loader)."""
    if gold_format not in GOLD_PARSERS:
        raise InputError(f"unknown gold format {gold_format!r}; choose one of {', '.join(GOLD_FORMATS)}")
    if answer_required and rows and all(
            _get(r, answer_field) is _MISSING and (solution_field is None or _get(r, solution_field) is _MISSING)
            for _, r in rows):
        pos, first = rows[0]
        raise InputError(f"{where(pos)}: no field {answer_field!r} (fields: {sorted(first)}); "
                         f"no record has it, so pass --answer-field with the field that holds the gold answer")
    parser = GOLD_PARSERS[gold_format]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for pos, row in rows:
        q = _question(row, question_field, where(pos))

        raw = _get(row, answer_field)
        gold, err = None, None
        if raw is not _MISSING and raw is not None and not (isinstance(raw, str) and not raw.strip()):
            gold, err = _parse_with(parser, raw)
            if not err and isinstance(gold, str) and row.get("is_multiple_answer") is True:
                from eval.grading.fast_paths import split_top_level

                parts = [part.strip() for part in split_top_level(gold) if part.strip()]
                gold = parts if len(parts) > 1 else gold
            if not err and choices_field is not None:
                gold, err = _with_choices(gold, _get(row, choices_field))
            if err:
                err = f"{where(pos)}: field {answer_field!r}: {err}"
        elif solution_field is not None and isinstance(_get(row, solution_field), str):
            boxed = last_boxed(_get(row, solution_field))
            if boxed == "":
                err = f"{where(pos)}: the last \\boxed{{}} of {solution_field!r} is empty"
            elif boxed:
                gold, err = parser(boxed)
                if err:
                    err = f"{where(pos)}: last \\boxed{{}} of {solution_field!r}: {err}"
            else:
                err = f"{where(pos)}: no {answer_field!r} and no \\boxed{{}} in {solution_field!r}"
        else:
            state = "missing" if raw is _MISSING else "empty"
            err = f"{where(pos)}: answer field {answer_field!r} is {state}"
        if gold is None and err is None:
            err = f"{where(pos)}: could not read a gold answer"

        own = _get(row, id_field) if id_field else _MISSING
        if own is _MISSING or own is None or (isinstance(own, str) and not own.strip()):
            pid = f"{name}-{question_hash(q)}"
        else:
            pid = f"{name}-{str(own).strip()}"
        if pid in seen:
            k = seen[pid]
            while f"{pid}-{k}" in seen:
                k += 1
            seen[pid] = k + 1
            pid = f"{pid}-{k}"
        seen[pid] = 2

        meta: dict[str, Any] = {"source": where(pos)}
        if raw is not _MISSING and raw is not None:
            meta["gold_given"] = raw  # as the source wrote it (samples.jsonl shows it beside the parsed gold)
        elif solution_field is not None and isinstance(_get(row, solution_field), str) and gold is not None:
            meta["gold_given"] = last_boxed(_get(row, solution_field))
        if "level" in row:
            meta["level"] = _level(row["level"])
        for key in ("subject", "type"):
            if key in row and isinstance(row[key], str):
                meta["subject"] = row[key]
                break
        if "url" in row:
            meta["url"] = row["url"]
        reference = _get(row, reference_field) if reference_field else None
        if isinstance(reference, str) and reference.strip():
            meta["solution"] = reference
        if own is not _MISSING and own is not None:
            meta["source_id"] = own
        problems.append(Problem(id=pid, question=q, gold=gold, benchmark=name, gold_error=err, meta=meta))
    return problems


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a whole number >= 0, got {limit!r}")


def load_file(path: str | os.PathLike, question_field: str, answer_field: str, id_field: str | None = None,
              gold_format: str = "auto", name: str | None = None, limit: int | None = None,
              solution_field: str | None = None, choices_field: str | None = None) -> list[Problem]:
    """Problems from any JSONL file (`--data FILE --question-field Q --answer-field A`).

    `question_field` may join several fields in order ("body,question") or be a template naming
    fields in braces ("{body} Question: {question}"). An answer that is a list is a gold with
    several parts (graded as a set), as is a string gold of a record with `is_multiple_answer:
    true`. With `choices_field`, a letter or 0-based index gold names one of the record's choices
    and either the letter or the choice's text is accepted.

    A record without the question field raises InputError naming file:line and the field. An
    answer field absent from every record is a wrong field name and raises too; one absent or
    unparseable in some records gives those problems gold=None with a gold_error. `name`
    (default: the file's stem) is the benchmark label and the id prefix. `solution_field`, when
    given, is a worked solution kept in `meta["solution"]`.
    """
    _check_limit(limit)
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"data file {path} has no records")
    problems = _build(rows, name=name or path.stem, where=lambda pos: f"{path}:{pos}",
                      question_field=question_field, answer_field=answer_field, id_field=id_field,
                      gold_format=gold_format, answer_required=True, reference_field=solution_field,
                      choices_field=choices_field)
    return problems if limit is None else problems[:limit]


def _unknown(name: str) -> InputError:
    return InputError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS) + sorted(GENERATED))}.\n"
                      f"{describe_benchmarks()}\n{GENERIC_HELP}")


def load_benchmark(name: str, data_dir: str | os.PathLike | None = None, limit: int | None = None,
                   level: int = 2) -> list[Problem]:
    """The problems of a registered benchmark: from `<data_dir>/<spec.local_path>` when data_dir is
    given, else from the Hugging Face Hub; `arith` is generated (`level`). `limit` keeps the first N
    (ids do not depend on it)."""
    if str(name).strip().lower() == "arith":
        return load_arith(level, limit)
    spec = BENCHMARKS.get(str(name).strip().lower())
    if spec is None:
        raise _unknown(name)
    return load_spec(spec, data_dir, limit)


def load_spec(spec: BenchmarkSpec, data_dir: str | os.PathLike | None = None,
              limit: int | None = None) -> list[Problem]:
    """The problems of any BenchmarkSpec (registered or not, e.g. synthesis's train-split seed pools)."""
    _check_limit(limit)
    if data_dir is not None:
        path = Path(data_dir) / spec.local_path
        if not path.exists():
            raise InputError(f"benchmark {spec.name}: {path} does not exist; --data-dir must hold "
                             f"{spec.local_path} (the layout of ../shared/data), or leave --data-dir out "
                             f"to download {spec.hub_id} from the Hub")
        rows = _read_rows(path)
        where: Callable[[int], str] = lambda pos: f"{path}:{pos}"  # noqa: E731
        qf, af, idf = spec.fields(hub=False)
    else:
        rows = _hub_rows(spec)
        label = f"{spec.hub_id}[{spec.hub_split}]"
        where = lambda pos: f"{label} row {pos}"  # noqa: E731
        qf, af, idf = spec.fields(hub=True)
    problems = _build(rows, name=spec.name, where=where, question_field=qf, answer_field=af, id_field=idf,
                      gold_format=spec.gold_format, solution_field=spec.solution_field,
                      reference_field=spec.reference_field)
    return problems if limit is None else problems[:limit]


def _hub_rows(spec: BenchmarkSpec) -> list[tuple[int, dict[str, Any]]]:
    """(row index, record) for the benchmark's Hub split, via datasets.load_dataset."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise InputError(f"loading {spec.name} from the Hub needs the `datasets` package ({e}); "
                         "install it or pass --data-dir") from None
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    except Exception as e:  # network, auth, offline mode, renamed dataset: all need the same advice
        raise InputError(f"could not load benchmark {spec.name} from the Hugging Face Hub "
                         f"({spec.hub_id}, config {spec.hub_config}, split {spec.hub_split}): "
                         f"{type(e).__name__}: {e}. Without Hub access pass --data-dir DIR holding "
                         f"{spec.local_path} (e.g. ../shared/data)") from None
    return [(i, dict(row)) for i, row in enumerate(ds)]
