"""Training examples: rows with chat `messages`, from a synthesis folder, a file, the Hub or the arith task.

SFT (`load_rows`): every row becomes `{"messages": [...]}` whose last message is the assistant's
answer (the tokens trained on). A row with prompt/completion columns instead is turned into two
messages.

GRPO (`load_prompts`): every row becomes `{"prompt": [chat messages], "answer": str}`, the prompt
the policy continues and the gold answer its rewards grade against.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from reasoning.types import InputError
from rl.config import DataSettings, PromptDataSettings

ARITH_PREFIX = "arith:"
ARITH_STYLES = ("plain", "parallel_r1", "threadweaver", "parathinker")


def arith_rows(style: str, level: int, count: int, seed: int, template: str = "math/boxed") -> list[dict[str, Any]]:
    """Arith training problems with the symbolic teacher's exact traces in `style` (never a test question).

    The user turn is `template` rendered with the question (by default the prompt `parafuse eval run`
    asks arith with), and the answer ends the way that prompt asks, so the trained model is evaluated
    on exactly what it was trained on."""
    from prompts import render
    from reasoning.engines.symbolic import ArithTeacher, ending_style, sequential_solution
    from reasoning.tasks.arith import generate

    if style not in ARITH_STYLES:
        raise InputError(f"data.source arith:{style}: unknown style; choose one of {', '.join(ARITH_STYLES)}")
    teacher = ArithTeacher()
    rows = []
    for problem in generate(level, count, "train", seed):
        prompt = render(template, question=problem.question)
        end = ending_style(prompt)
        if style == "plain":
            answer = sequential_solution(problem, problem.answer, end)
        else:
            answer = teacher.full(problem, problem.answer, end, style, False)
        rows.append({"messages": [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": answer}],
                     "answer": str(problem.answer)})
    return rows


LOCAL_KINDS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def _read_local(files: list[Path]):
    """The rows of local data files as one in-memory `datasets.Dataset`, read afresh on every call.

    `datasets.load_dataset(FOLDER)` caches a folder's rows under the folder's name and a hash of its
    layout, not of its contents (datasets 5): a second synthesis folder of the same name (a rerun of
    `parafuse demo`, `runs/a/mathfusion` after `runs/b/mathfusion`) came back with the first one's
    rows. Reading the files here has no cache to go stale."""
    import datasets
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    tables = []
    for file in files:
        kind = LOCAL_KINDS[file.suffix]
        if kind == "parquet":
            tables.append(pyarrow.parquet.read_table(file))
        elif kind == "csv":
            tables.append(pyarrow.csv.read_csv(file))
        else:
            rows = _json_rows(file)
            # every row gets every column (None where it has none): pyarrow takes the columns of the first row
            columns = list(dict.fromkeys(key for row in rows for key in row))
            tables.append(pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows]))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
    return datasets.Dataset(table)


def _json_rows(file: Path) -> list[dict[str, Any]]:
    import json

    from reasoning.jsonl import read_jsonl

    if file.suffix == ".json":
        text = file.read_text()
        if text.lstrip().startswith("["):
            return json.loads(text)
    return read_jsonl(file)


def _folder_files(path: Path, split: str) -> list[Path]:
    """A local folder's files of `split`: the layout every `parafuse synth` command writes
    (data/SPLIT.parquet next to its JSONL twin), else SPLIT-named data files anywhere below it."""
    for pattern in (f"data/{split}.parquet", f"data/{split}-*.parquet", f"data/{split}.jsonl"):
        found = sorted(path.glob(pattern))
        if found:
            return found
    found = sorted(f for f in path.rglob(f"{split}*") if f.suffix in LOCAL_KINDS)
    parquet = [f for f in found if f.suffix == ".parquet"]
    return parquet or found


def _load_table(data: DataSettings | PromptDataSettings):
    import datasets

    source = data.source
    path = Path(source)
    if path.is_dir():
        files = _folder_files(path, data.split)
        if not files:
            raise InputError(f"data.source {source}: no {data.split} data files in this folder (expected "
                             f"data/{data.split}.parquet as `parafuse synth` writes, or {data.split}*.jsonl); "
                             f"set data.split or point at the file")
        return _read_local(files)
    if path.is_file():
        if path.suffix not in LOCAL_KINDS:
            raise InputError(f"data.source {source}: unknown file type; use .jsonl, .json, .parquet or .csv")
        return _read_local([path])
    try:
        return datasets.load_dataset(source, data.subset, split=data.split)
    except Exception as e:  # the Hub's errors vary; say what was asked for
        raise InputError(f"data.source {source!r}: not a folder or file here, and the Hub load failed: {e}") from None


def to_messages(row: dict[str, Any], data: DataSettings, where: str) -> list[dict[str, str]]:
    """The row's chat messages, checked: roles and string contents, the assistant's turn last."""
    messages = row.get(data.messages_field)
    if messages is None:
        prompt, completion = row.get(data.prompt_field), row.get(data.completion_field)
        if prompt is None or completion is None:
            raise InputError(f"{where}: no '{data.messages_field}' column and no '{data.prompt_field}'/"
                             f"'{data.completion_field}' pair; set data.messages_field or data.prompt_field")
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        messages = list(prompt) + list(completion)
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: '{data.messages_field}' must be a non-empty list of {{role, content}}")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise InputError(f"{where}: every message needs a role and a string content, got {m!r}")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's answer (the trained tokens), got "
                         f"role {messages[-1]['role']!r}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_rows(data: DataSettings, seed: int) -> list[dict[str, Any]]:
    """The training rows as `{"messages": [...]}` (plus `answer` where known), shuffled and limited."""
    if data.source.startswith(ARITH_PREFIX):
        rows = arith_rows(data.source[len(ARITH_PREFIX):], data.arith_level, data.arith_count, seed,
                          data.arith_template)
    else:
        table = _load_table(data)
        rows = []
        for index, row in enumerate(table):
            rows.append({"messages": to_messages(row, data, f"{data.source} row {index}"),
                         "answer": None if row.get("answer") is None else str(row["answer"])})
    if not rows:
        raise InputError(f"data.source {data.source}: no examples")
    if data.shuffle:
        random.Random(seed).shuffle(rows)
    return rows[:data.limit] if data.limit else rows


def to_prompt(row: dict[str, Any], data: PromptDataSettings, where: str) -> list[dict[str, str]]:
    """The row's prompt as chat messages: its prompt column (a string is one user turn), or its messages
    without a trailing assistant answer."""
    prompt = row.get(data.prompt_field)
    if prompt is None:
        messages = row.get(data.messages_field)
        if messages is None:
            raise InputError(f"{where}: no '{data.prompt_field}' column and no '{data.messages_field}' column; set "
                             f"data.prompt_field or data.messages_field")
        prompt = list(messages)
        if prompt and isinstance(prompt[-1], dict) and prompt[-1].get("role") == "assistant":
            prompt = prompt[:-1]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise InputError(f"{where}: the prompt must be a string or a non-empty list of {{role, content}}")
    for m in prompt:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise InputError(f"{where}: every prompt message needs a role and a string content, got {m!r}")
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def load_prompts(data: PromptDataSettings, seed: int) -> list[dict[str, Any]]:
    """The RL prompts as `{"prompt": [...], "answer": str}`, shuffled and limited; every row needs an answer."""
    if data.source.startswith(ARITH_PREFIX):
        rows = [{"prompt": r["messages"][:-1], "answer": r["answer"]}
                for r in arith_rows(data.source[len(ARITH_PREFIX):], data.arith_level, data.arith_count, seed,
                                    data.arith_template)]
    else:
        table = _load_table(data)
        rows = []
        for index, row in enumerate(table):
            where = f"{data.source} row {index}"
            answer = row.get(data.answer_field)
            if answer is None:
                raise InputError(f"{where}: no '{data.answer_field}' value (the gold answer the rewards grade "
                                 f"against); set data.answer_field")
            rows.append({"prompt": to_prompt(row, data, where), "answer": str(answer)})
    if not rows:
        raise InputError(f"data.source {data.source}: no prompts")
    if data.shuffle:
        random.Random(seed).shuffle(rows)
    return rows[:data.limit] if data.limit else rows
