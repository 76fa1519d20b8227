"""Grade predictions a user already has: one pair, many pairs, or a JSONL file (`parafuse eval grade`).

    from eval.grading import grade_pair, grade_pairs
    grade_pair("3/4", "so we get $\\frac{3}{4}$")        # Grade(correct=True, answer='\\frac{3}{4}', ...)
    grade_pairs([(gold, output), ...], strict_extraction=True)

`grade_file` reads JSONL (bad lines name the file and line), writes one row per input line with a
`grade` object added (`correct`, the extracted `answer`, `extractor`, `reason`), a chunk at a
time, so Ctrl-C loses at most the chunk being graded; a rerun keeps the rows already written for
the same (line, gold, prediction) and grades the rest (rows graded with other settings or another
grader version are graded again).
The settings are those of `eval run`, and so are the verdicts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.records import Grade
from reasoning.settings import setting
from reasoning.types import InputError

CHUNK = 256  # pairs graded between two flushes of the output
GRADERS = ("parafuse", "parallel_r1_reference")  # `make_grader` builds each


@dataclass
class GradeSettings:
    """How `eval grade` (and `grade_pair` / `grade_pairs`) grades: the same knobs as `eval run`."""

    allow_last_number: bool = setting(False, "grade an output with no boxed/Final Answer by its last number")
    strict_extraction: bool = setting(False, "only anchored answers (boxed, Final Answer, ####, 'the answer is'): "
                                             "no fallback to an unanchored output's last math span, answer label "
                                             "or last line")
    float_tol: float = setting(1e-6, "relative tolerance for decimal golds stored as floats (10+ significant "
                                     "digits, e.g. 0.6666666667); other golds compare exactly")
    grader_timeout: float = setting(5.0, "hard per-item grading time limit in seconds")
    grader: str = setting("parafuse", "the verdict: parafuse (\\boxed{}/Final Answer extraction, math equivalence) | "
                                      "parallel_r1_reference (Parallel-R1's verifier: the last `Final Answer:` in the "
                                      "last 300 characters of the tag-stripped text, Minerva normalisation, string "
                                      "equality; a lone \\boxed{} is wrong; the settings above do not apply)",
                          choices=GRADERS)


def make_grader(settings: GradeSettings):
    """The Grader for `settings` (`eval run` nests the same block in its config)."""
    from eval.grading.equivalence import Grader

    if settings.grader == "parallel_r1_reference":
        from eval.grading.reference_parallel_r1 import ReferenceGrader

        return ReferenceGrader()
    if settings.grader != "parafuse":
        raise InputError(f"grader must be one of {', '.join(GRADERS)}, got {settings.grader!r}")
    return Grader(timeout_s=settings.grader_timeout, allow_last_number=settings.allow_last_number,
                  strict_extraction=settings.strict_extraction, float_tol=settings.float_tol)


def grade_pairs(pairs: Sequence[tuple[Any, str]], progress: bool = False, **settings: Any) -> list[Grade]:
    """Grade (gold, model output) pairs with a grader of its own; `settings` are GradeSettings fields.

    A gold may be a string or a list of answers (graded as a set).
    """
    with make_grader(GradeSettings(**settings)) as grader:
        return grader.grade_many(list(pairs), progress=progress)


def grade_pair(gold: Any, prediction: str, **settings: Any) -> Grade:
    """Grade one (gold, model output) pair (see `grade_pairs`)."""
    return grade_pairs([(gold, prediction)], **settings)[0]


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise InputError(f"{where}: no field {name!r} (fields: {sorted(row)}); pass --gold-field / "
                             "--prediction-field with the fields that hold the gold and the model output")
        value = value[part]
    return value


def _row_key(line: int, gold: Any, prediction: Any, grading: str) -> str:
    """A row's resume key: its line, gold and prediction, and how it was graded (settings, grader)."""
    blob = json.dumps([line, gold, prediction, grading], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def grade_file(input_path: str | os.PathLike, out_path: str | os.PathLike, gold_field: str, prediction_field: str,
               settings: GradeSettings | None = None, progress: bool = True) -> dict[str, Any]:
    """Grade every line of a JSONL file into `out_path` (resumable); returns the summary counts."""
    from reasoning.jsonl import read_jsonl, write_jsonl_atomic

    settings = settings or GradeSettings()
    from eval.grading.equivalence import GRADER_NAME, GRADER_VERSION

    grading = json.dumps([GRADER_NAME, GRADER_VERSION, dataclasses.asdict(settings)], sort_keys=True)
    input_path, out_path = Path(input_path), Path(out_path)
    if not input_path.is_file():
        raise InputError(f"--input {input_path}: no such file")
    rows = read_jsonl(input_path)
    pairs = []
    for line, row in enumerate(rows, 1):
        where = f"{input_path}:{line}"
        gold, prediction = _field(row, gold_field, where), _field(row, prediction_field, where)
        if not isinstance(prediction, str):
            raise InputError(f"{where}: field {prediction_field!r} must be the model's output text, got "
                             f"{type(prediction).__name__}")
        pairs.append((line, _row_key(line, gold, prediction, grading), gold, prediction))
    # Resume: rows already graded for the same line, gold and prediction are kept.
    done: dict[str, dict[str, Any]] = {}
    if out_path.exists():
        for row in read_jsonl(out_path, repair_tail=True):
            if isinstance(row.get("grade_key"), str):
                done[row["grade_key"]] = row
    todo = [p for p in pairs if p[1] not in done]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with make_grader(settings) as grader, open(out_path, "a", encoding="utf-8") as sink:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            grades = grader.grade_many([(gold, prediction) for _, _, gold, prediction in chunk],
                                       progress=progress and len(todo) > CHUNK)
            for (line, key, _, _), grade in zip(chunk, grades):
                # The verdict goes under its own key: the input's own fields (a gold called "answer",
                # a label called "correct") are never overwritten.
                row = {**rows[line - 1], "grade": grade.to_dict(), "grade_key": key}
                done[key] = row
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
        grader_name = grader.name
    # Every line graded: rewrite in input order (atomic), one row per input line.
    ordered = [done[key] for _, key, _, _ in pairs]
    write_jsonl_atomic(out_path, ordered)
    return summarize(ordered, resumed=len(pairs) - len(todo), grader=grader_name)


def summarize(rows: Sequence[dict[str, Any]], resumed: int = 0, grader: str = "") -> dict[str, Any]:
    grades = [r["grade"] for r in rows]
    correct = sum(1 for g in grades if g.get("correct"))
    return {"pairs": len(rows), "correct": correct, "accuracy": correct / len(rows) if rows else 0.0,
            "resumed": resumed, "by_extractor": dict(Counter(g.get("extractor") for g in grades).most_common()),
            "by_reason": dict(Counter(g.get("reason") for g in grades).most_common()), "grader": grader}


def summary_line(summary: dict[str, Any], out: str) -> str:
    def counts(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())
    return (f"{summary['pairs']} pairs ({summary['resumed']} already in {out}): {summary['correct']} correct "
            f"({summary['accuracy']:.1%}); by extractor: {counts(summary['by_extractor'])}; by reason: "
            f"{counts(summary['by_reason'])}")
