"""The run folder's per-step log: every entry TRL logs, one JSON line each, in OUTPUT/train_log.jsonl.

TRL's log (loss, reward, each reward's mean and std, the trace and rollout figures parafuse adds,
the alternating phase) is printed and kept in `trainer.state.log_history`; this file keeps it
beside the checkpoints, where a plot or a report reads it without loading a checkpoint. A
resumed run first drops the lines after the step it resumes from, so the file holds each step once.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback

STEP_LOG = "train_log.jsonl"


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StepLog(TrainerCallback):
    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= state.global_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, **{key: _plain(value) for key, value in logs.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")


def read_step_log(folder: Path) -> list[dict]:
    """The entries of a run folder's train_log.jsonl, in order ([] when there is none)."""
    path = Path(folder) / STEP_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["STEP_LOG", "StepLog", "read_step_log"]
