"""The demo run folder's README.md: what each stage did and changed, and how to reproduce each number.

The tables read every model's eval `results.json` (`eval.report_data.load_run`): single-sample
accuracy, majority vote and Fusion-of-N at the largest N, the last rethinking round, the parallel
decoder's accuracy with its total and critical-path tokens, and the share of its traces that are
valid; then each trained model against the one it started from, with whether each change exceeds
twice its standard error. The training rows read each
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
    fusion, rethink = point(run, "fusion"), point(run, "rethink")
    decoded = point(run, parallel)
    fmt = run.format_stats.get(parallel, {})
    return {"model": label,
            "accuracy@1": plain and plain["accuracy"],
            "majority@N": majority and majority["accuracy"], "N": majority and majority["budget"],
            "fusion@N": fusion and fusion["accuracy"],
            "rethink (last round)": rethink and rethink["accuracy"],
            f"{parallel} accuracy": decoded and decoded["accuracy"],
            f"{parallel} tokens": decoded and decoded["tokens"],
            f"{parallel} critical tokens": decoded and decoded.get("critical_path_tokens"),
            "valid traces": fmt.get("valid_format"), "forked": fmt.get("parallel_response_rate")}


# What each trained stage is compared with, and the figures compared.
CHANGES = (("accuracy@1", "plain", 1), ("majority@N", "majority", None))


def moved(before, after) -> str:
    """`a -> b`, and whether the change is beyond twice its standard error (the two runs' errors combined)."""
    if before is None or after is None:
        return "-"
    delta = after["accuracy"] - before["accuracy"]
    se = (before.get("accuracy_se", 0.0) ** 2 + after.get("accuracy_se", 0.0) ** 2) ** 0.5
    verdict = "beyond noise" if abs(delta) > 2 * se else "within noise"
    return f"{before['accuracy']:.3f} -> {after['accuracy']:.3f} ({delta:+.3f}, 2 se {2 * se:.3f}: {verdict})"


def change_rows(runs: dict[str, Any], parallel: str, parallel_start: str) -> list[dict[str, Any]]:
    """One row per trained model against the model it started from: accuracy (one sample, majority, the
    parallel decoder) and the decoder's critical-path tokens."""
    grpo, sft = f"grpo-{parallel}", f"sft-{parallel}"
    pairs = [("sft-plain", "untrained"), (sft, "sft-plain" if parallel_start == "plain" else "untrained"),
             (grpo, sft)]
    rows = []
    for after, before in pairs:
        if after not in runs or before not in runs:
            continue
        row = {"stage": after, "compared with": before}
        for name, strategy, budget in CHANGES:
            row[name] = moved(point(runs[before], strategy, budget), point(runs[after], strategy, budget))
        was, now = point(runs[before], parallel), point(runs[after], parallel)
        row[f"{parallel} accuracy"] = moved(was, now)
        row[f"{parallel} critical tokens"] = (f"{was['critical_path_tokens']:.1f} -> {now['critical_path_tokens']:.1f}"
                                              if was and now else "-")
        rows.append(row)
    return rows


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
    runs = {stage.name[len("eval-"):]: load_run(out / stage.writes) for stage in stages
            if stage.name.startswith("eval-") and (out / stage.writes / "results.json").exists()}
    models = [model_row(label, run, parallel) for label, run in runs.items()]
    changes = change_rows(runs, parallel, cfg.training.parallel_start)
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
             "tokens on the longest chain of dependent requests). fusion@N: the model fusing N of its own "
             "samples (Fusion-of-N with itself as the fusor, a task it was never trained on); rethink: its last "
             "rethinking round.", "",
             "## What each stage changed", "",
             table(changes) or "No trained model was evaluated.", "",
             "Each trained model against the one it started from, under the same pool (problems, seeds, "
             "temperature). A change is called beyond noise when it exceeds twice the standard error of the "
             "difference; anything else did not move on this many problems.", "",
             "## Training", "", table(trained), "",
             "## Stages", "",
             "| stage | seconds | command |", "|---|---|---|"]
    for stage in stages:
        done = state["stages"].get(stage.name, {})
        lines.append(f"| {stage.name} | {done.get('seconds', '-')} | `parafuse {shlex.join(stage.command)}` |")
    lines += ["", "The report: `report/report.html` (plots) and `report/report.md`.", ""]
    (out / "README.md").write_text("\n".join(lines))
    return {"models": models, "changes": changes, "training": trained}


__all__ = ["write_summary"]
