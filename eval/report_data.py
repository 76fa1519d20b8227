"""Loading eval runs for the scaling report: one ``Run`` per run directory's ``results.json``.

``load_run`` reads and validates one run directory; ``unique_labels`` disambiguates repeated labels,
``by_benchmark`` groups runs so that different benchmarks never share a table or plot, and ``as_number``
turns any JSON value into a float (NaN when it is not a number).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# ----------------------------------------------------------------------------------------------
# Loading


@dataclass
class Run:
    """One run directory's results.json, with defaults for every missing part."""

    label: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    grader: Any = None
    problems: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    extraction: dict[str, Any] = field(default_factory=dict)  # answers per extraction tier, fallback share
    format_stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # per decoded strategy: valid, forked, ...

    @property
    def benchmark(self) -> str:
        return str(self.config.get("benchmark") or "unknown")

    @property
    def model(self) -> str:
        return str(self.config.get("model") or "?")

    def strategies(self) -> list[str]:
        """Strategies in the order the config lists them, then any others the points or fits use."""
        out: list[str] = []
        fitted = [fit_info(key, f)["strategy"] for key, f in self.fits.items()]  # None: a fit to pass@k
        for s in list(self.config.get("strategies") or []) + [p.get("strategy") for p in self.points] + fitted:
            if s is not None and str(s) not in out:
                out.append(str(s))
        return out


# What a run folder's results.json called a value before it was renamed (old name -> new name), so that
# reports of older runs still read: the decoded strategies' "forked" share is Parallel-R1's parallel ratio.
RENAMED_FORMAT_KEYS = {"forked": "parallel_response_rate"}


def fit_info(key: str, fit: dict[str, Any]) -> dict[str, Any]:
    """What a saturation fit was fitted to: strategy (None for pass@k), axis, kind and a label.

    Fits written before the labels existed were all selection fits (majority, best-of-N, fusion at N)
    keyed by their strategy.
    """
    strategy = fit.get("strategy", key) if "curve" in fit else key
    kind = fit.get("kind") or "selection"
    return {"strategy": strategy, "axis": fit.get("axis") or "samples", "kind": kind,
            "label": fit.get("label") or f"fit to {key}@N (selection)"}


def load_run(run_dir: Path) -> Run:
    """Read ``run_dir/results.json``; a missing file or a non-object raises a clear error."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in run directory {run_dir}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    points = [p for p in (data.get("points") or []) if isinstance(p, dict) and "accuracy" in p]
    fits = {str(k): v for k, v in (data.get("fits") or {}).items() if isinstance(v, dict) and "f_max" in v}
    return Run(label=str(data.get("label") or run_dir.name), path=run_dir, config=dict(data.get("config") or {}),
               versions=dict(data.get("versions") or {}), grader=data.get("grader"),
               problems=dict(data.get("problems") or {}), metrics=dict(data.get("metrics") or {}),
               points=points, fits=fits, extraction=dict(data.get("extraction") or {}),
               format_stats={str(k): {RENAMED_FORMAT_KEYS.get(name, name): value for name, value in v.items()}
                             for k, v in (data.get("format") or {}).items() if isinstance(v, dict)})


def unique_labels(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        base = r.label
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            r.label = f"{base} #{seen[base]}"


# ----------------------------------------------------------------------------------------------
# Formatting helpers


def as_number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def by_benchmark(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.benchmark, []).append(r)
    return out
