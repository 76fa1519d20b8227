"""Trainer callbacks every `parafuse train` run uses: the per-step log file and the time budget.

`StepLog`: every entry TRL logs, one JSON line each, in OUTPUT/train_log.jsonl. TRL's log (loss,
reward, each reward's mean and std, the trace and rollout figures parafuse adds, the alternating
phase) is printed and kept in `trainer.state.log_history`; this file keeps it beside the
checkpoints, where a plot or a report reads it without loading a checkpoint. A resumed run first
drops the lines after the step it resumes from, so the file holds each step once.

`TimeBudget`: `training.time_budget_s` stops a run cleanly, with a checkpoint.
"""
from __future__ import annotations

import json
import math
import time
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


class TimeBudget(TrainerCallback):
    """Stops training cleanly, with a checkpoint, once `seconds` have passed since it began."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start >= self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control


def run_callbacks(output_dir: Path, time_budget_s: float | None) -> list[TrainerCallback]:
    """The step log in `output_dir`, and the time budget when one is set."""
    callbacks: list[TrainerCallback] = [StepLog(Path(output_dir) / STEP_LOG)]
    if time_budget_s:
        callbacks.append(TimeBudget(time_budget_s))
    return callbacks


def read_step_log(folder: Path) -> list[dict]:
    """The entries of a run folder's train_log.jsonl, in order ([] when there is none)."""
    path = Path(folder) / STEP_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["STEP_LOG", "StepLog", "TimeBudget", "read_step_log", "run_callbacks"]
