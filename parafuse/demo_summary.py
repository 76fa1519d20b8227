"""The demo run folder's README.md: what each stage did and changed, and how to reproduce each number.

The table reads every model's eval `results.json` (`eval.report_data.load_run`): single-sample
accuracy, majority vote at the largest N, the parallel decoder's accuracy with its total and
critical-path tokens, and the share of its traces that are valid. The training rows read each
run's `parafuse_training.json` and its `train_log.jsonl` (first and last logged reward).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any


def point(run, strategy: str, budget: int | None = None) -> dict[str, Any] | None:
    """The run's point for `strategy` at `budget` (None: its largest). Sampled strategies are read on the
    samples axis; a decoder has its own axis (decodes per problem) and is read on it."""
    rows = [p for p in run.points if p.get("strategy") == strategy]
    if any(p.get("axis", "samples") == "samples" for p in rows):
        rows = [p for p in rows if p.get("axis", "samples") == "samples"]
    if budget is not None:
        rows = [p for p in rows if p.get("budget") == budget]
    return max(rows, key=lambda p: p.get("budget", 0)) if rows else None


def model_row(label: str, run, parallel: str) -> dict[str, Any]:
    plain = point(run, "plain", 1)
    majority = point(run, "majority")
    decoded = point(run, parallel)
    fmt = run.format_stats.get(parallel, {})
    return {"model": label,
            "accuracy@1": plain and plain["accuracy"],
            "majority@N": majority and majority["accuracy"], "N": majority and majority["budget"],
            f"{parallel} accuracy": decoded and decoded["accuracy"],
            f"{parallel} tokens": decoded and decoded["tokens"],
            f"{parallel} critical tokens": decoded and decoded.get("critical_path_tokens"),
            "valid traces": fmt.get("valid_format"), "forked": fmt.get("parallel_response_rate")}


def training_row(out: Path, name: str) -> dict[str, Any]:
    record = out / "models" / name / "final" / "parafuse_training.json"
    summary = json.loads(record.read_text()) if record.exists() else {}
    log = out / "models" / name / "train_log.jsonl"
    rewards = []
    if log.exists():
        rewards = [e["reward"] for e in map(json.loads, log.read_text().splitlines()) if "reward" in e]
    return {"stage": name, "steps": summary.get("steps"), "seconds": summary.get("seconds"),
            "train loss": summary.get("train_loss"),
            "reward first -> last": f"{rewards[0]:.3f} -> {rewards[-1]:.3f}" if rewards else None}


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])

    def shown(v):
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(shown(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def write_summary(out: Path, cfg, stages, state: dict[str, Any]) -> dict[str, Any]:
    """Write DIR/README.md; returns the figures it shows (also kept in demo.json)."""
    from eval.report_data import load_run

    parallel = cfg.training.parallel_format
    models = []
    for stage in stages:
        if stage.name.startswith("eval-") and (out / stage.writes / "results.json").exists():
            models.append(model_row(stage.name[len("eval-"):], load_run(out / stage.writes), parallel))
    trained = [training_row(out, s.writes.split("/", 1)[1]) for s in stages
               if s.name.startswith(("sft-", "grpo-")) and s.writes.startswith("models/")]
    lines = [f"# {cfg.title}", "",
             "Written by `parafuse demo`. Every stage below is one `parafuse` command, run in this folder; rerun "
             "any of them to reproduce its numbers (each is resumable), or rerun `parafuse demo` with the same "
             "settings to resume the whole run.", "",
             "## What each model reaches", "",
             table(models), "",
             "accuracy@1: one sample at the pool's temperature; majority@N: majority vote over N samples; the "
             f"{parallel} columns: the parallel decoder's accuracy, its total tokens and its critical path (the "
             "tokens on the longest chain of dependent requests).", "",
             "## Training", "", table(trained), "",
             "## Stages", "",
             "| stage | seconds | command |", "|---|---|---|"]
    for stage in stages:
        done = state["stages"].get(stage.name, {})
        lines.append(f"| {stage.name} | {done.get('seconds', '-')} | `parafuse {shlex.join(stage.command)}` |")
    lines += ["", "The report: `report/report.html` (plots) and `report/report.md`.", ""]
    (out / "README.md").write_text("\n".join(lines))
    return {"models": models, "training": trained}


__all__ = ["write_summary"]
