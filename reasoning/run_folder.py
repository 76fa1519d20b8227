"""`RunFolder`: the output folder every resumable run writes (synthesis, eval, and training runs).

    DIR/config.json      the settings of the run; a rerun with other identity settings is refused
    DIR/<store>.jsonl    the generation store (what makes a rerun resume without re-sending)
    DIR/stats.json       what the run counted
    DIR/failures.jsonl   what failed, one row each, with its reason
    DIR/...              the run's own files (datasets, samples, results, cards), written atomically

Every file but the store is written through a temporary name and a rename, so a kill leaves the
old file or the new one. The store itself is append-only and flushed row by row.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoning.jsonl import write_jsonl_atomic
from reasoning.store import GenerationStore
from reasoning.types import InputError


class RunFolder:
    """One run's folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, store_name: str = "store.jsonl"):
        self.path = Path(path)
        self.store_path = self.path / store_name

    def start(self, config: Mapping[str, Any], identity: Sequence[str] = (),
              normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        """Create the folder and record `config` in config.json.

        `identity` names the settings that decide what the store holds: when the folder already
        holds generations of a run whose identity settings differ, mixing the two would be one
        experiment scored as another, so it is refused with the differences spelled out (a folder
        whose store is still empty is taken over). `normalize`
        turns an older config.json into today's shape before comparing (a moved setting).
        """
        path = self.path / "config.json"
        if identity and path.exists():
            theirs = json.loads(path.read_text(encoding="utf-8"))
            if normalize is not None:
                theirs = normalize(theirs)
            diff = [k for k in identity if theirs.get(k) != config.get(k)]
            # A run that failed before generating anything (no usable gold, a typo) holds nothing to mix
            # up: the corrected rerun takes the folder over.
            if diff and self.generated_anything():
                details = "; ".join(f"{k}: {theirs.get(k)!r} there, {config.get(k)!r} now" for k in diff)
                raise InputError(f"{self.path} holds a run made with other settings ({details}). Mixing them "
                                 "would score two experiments as one: use another --out, or the same settings.")
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json("config.json", dict(config))

    def generated_anything(self) -> bool:
        """Whether the folder's store holds any generation."""
        return self.store_path.exists() and self.store_path.stat().st_size > 0

    def store(self) -> GenerationStore:
        """The run's generation store (open it in a `with` block)."""
        return GenerationStore(self.store_path)

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, target)
        return target

    def write_rows(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        return write_jsonl_atomic(self.path / name, rows)

    def write_stats(self, stats: Mapping[str, Any]) -> Path:
        return self.write_json("stats.json", dict(stats))

    def write_failures(self, rows: Iterable[dict[str, Any]]) -> Path:
        return self.write_rows("failures.jsonl", rows)


__all__ = ["RunFolder"]
