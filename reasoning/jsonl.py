"""JSONL files: reading with errors that name the file and line, and atomic writing.

Every package reads and writes its JSONL through here: the generation store, prompt inputs,
benchmark files, decode outputs, eval samples and synthesis datasets.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasoning.types import InputError


def read_jsonl(path: str | os.PathLike, repair_tail: bool = False) -> list[dict[str, Any]]:
    """Read JSONL, naming the file and line of any malformed row.

    With `repair_tail`, a last line cut short by a kill (no trailing newline, not JSON) is
    dropped from the file instead of being an error: it was never a finished row.
    """
    path = Path(path)
    data = path.read_bytes()
    if repair_tail and data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail)
            data += b"\n"
            with open(path, "ab") as f:
                f.write(b"\n")
        except ValueError:
            with open(path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
    return [row for _, row in parse_jsonl(data.decode("utf-8", errors="replace"), path)]


def parse_jsonl(text: str, path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is an error naming `path` and the line."""
    rows = []
    # split on "\n" only: str.splitlines also breaks at \x1c, \x85, \u2028 ..., which a row written with
    # ensure_ascii=False (a model's raw text) may hold inside a string
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); "
                             "fix or remove that line") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append((lineno, row))
    return rows


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]], fsync: bool = False) -> Path:
    """Write `rows` to `path`, one JSON object per line, through a temporary file and a rename.

    A kill while writing leaves the old file or the new one, never half of one; `fsync` also
    makes the new file durable before it replaces the old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


__all__ = ["parse_jsonl", "read_jsonl", "write_jsonl_atomic"]
