"""Scaling reports: a Markdown file plus a self-contained HTML page comparing eval runs.

``write_report(run_dirs, out_dir)`` reads ``results.json`` from each run directory and writes
``report.md`` (tables, with the plots as PNG files beside it) and ``report.html``. The HTML holds
the same tables, with the same plots embedded as base64 ``data:`` PNGs. It uses no external
scripts, stylesheets or fonts, so it can be mailed or archived as one file.

The plots follow the usual test-time-scaling conventions (docs/research/fusion_and_eval.md
section 4.5):

* accuracy vs mean generated tokens per problem, vs critical-path tokens, and vs wall time. Every
  (strategy, budget) point of every run is shown. The Pareto frontier over all points of a
  benchmark is drawn as a staircase, and dominated points are hollow and faded;
* pass@k, maj@k and avg@k vs k on a log2 axis;
* accuracy vs budget N on a log2 axis, per run, with the fitted saturation curves
  F(N) = F_max (1 - (1-p)^N) and their saturation budgets N* (see ``eval.scaling``).

Colour encodes the strategy and the marker shape the run, in every plot except pass@k, where
colour and marker both encode the run. Runs are grouped by benchmark: points from different
benchmarks never share a frontier. Plots are drawn on matplotlib's Agg canvas directly, so the
process-wide pyplot backend is left alone.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from eval.scaling import pareto_frontier, saturation_curve

__all__ = ["write_report", "load_run"]

STRATEGY_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                   "#bcbd22", "#7f7f7f"]
RUN_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
RUN_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
DPI = 120
PANEL_W, PANEL_H = 5.6, 4.2
MAX_COLS = 2


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

    @property
    def benchmark(self) -> str:
        return str(self.config.get("benchmark") or "unknown")

    @property
    def model(self) -> str:
        return str(self.config.get("model") or "?")

    def strategies(self) -> list[str]:
        """Strategies in the order the config lists them, then any others the points or fits use."""
        out: list[str] = []
        for s in list(self.config.get("strategies") or []) + [p.get("strategy") for p in self.points] + list(self.fits):
            if s is not None and str(s) not in out:
                out.append(str(s))
        return out


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
               points=points, fits=fits)


def _unique_labels(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        base = r.label
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            r.label = f"{base} #{seen[base]}"


# ----------------------------------------------------------------------------------------------
# Formatting helpers


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _pct(v: Any, se: Any = None) -> str:
    f = _num(v)
    if not math.isfinite(f):
        return "–"
    s = f"{100 * f:.1f}"
    e = _num(se)
    if math.isfinite(e):
        s += f" ± {100 * e:.1f}"
    return s


def _fmt(v: Any, digits: int = 3) -> str:
    f = _num(v)
    if not math.isfinite(f):
        return "–" if v is None or isinstance(v, (int, float)) else str(v)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    if abs(f) >= 100:
        return f"{f:.0f}"
    return f"{f:.{digits}g}"


def _grader_text(grader: Any) -> str:
    if grader is None:
        return "–"
    if not isinstance(grader, dict):
        return str(grader)
    name = grader.get("name") or grader.get("grader")
    version = grader.get("version")
    if name:
        return f"{name} {version}" if version else str(name)
    return ", ".join(f"{k}={v}" for k, v in grader.items()) or "–"


def _metric_at(metrics: dict[str, Any], name: str, k: int | None) -> tuple[float, int | None]:
    """The value of metrics[name] at k (k=None: at the largest k); NaN when absent."""
    ks = list(metrics.get("k") or [])
    vals = list(metrics.get(name) or [])
    if not ks or len(vals) != len(ks):
        return math.nan, None
    if k is None:
        i = int(np.argmax(ks))
    elif k in ks:
        i = ks.index(k)
    else:
        return math.nan, None
    return _num(vals[i]), int(ks[i])


def _point_at_max_budget(run: Run, strategy: str) -> dict[str, Any] | None:
    pts = [p for p in run.points if p.get("strategy") == strategy]
    if not pts:
        return None
    return max(pts, key=lambda p: _num(p.get("budget")) if math.isfinite(_num(p.get("budget"))) else -math.inf)


# A table is (header, rows) of plain strings; both writers escape for their own format.
Table = tuple[list[str], list[list[str]]]


def _md_table(table: Table) -> str:
    header, rows = table

    def cell(s: str) -> str:
        return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="tw"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


# ----------------------------------------------------------------------------------------------
# Tables


def _summary_table(runs: list[Run]) -> Table:
    strategies: list[str] = []
    for r in runs:
        strategies += [s for s in r.strategies() if s not in strategies]
    header = ["run", "benchmark", "model", "n", "strategies"]
    header += [f"{s} acc % @max N" for s in strategies]
    header += ["pass@1 %", "pass@k % (max k)", "maj@k % (max k)", "graded", "excluded", "grader"]
    rows = []
    for r in runs:
        row = [r.label, r.benchmark, r.model, _fmt(r.config.get("n")), ", ".join(r.strategies()) or "–"]
        for s in strategies:
            p = _point_at_max_budget(r, s)
            cell = "–" if p is None else f"{_pct(p.get('accuracy'), p.get('accuracy_se'))} (N={_fmt(p.get('budget'))})"
            row.append(cell)
        p1, _ = _metric_at(r.metrics, "pass@k", 1)
        pk, kmax = _metric_at(r.metrics, "pass@k", None)
        mk, kmaj = _metric_at(r.metrics, "maj@k", None)
        row += [_pct(p1), "–" if kmax is None else f"{_pct(pk)} (k={kmax})",
                "–" if kmaj is None else f"{_pct(mk)} (k={kmaj})"]
        total, graded = r.problems.get("total"), r.problems.get("graded")
        row.append(f"{_fmt(graded)}/{_fmt(total)}" if graded is not None or total is not None else "–")
        row += [_fmt(r.problems.get("excluded")), _grader_text(r.grader)]
        rows.append(row)
    return header, rows


def _protocol_table(runs: list[Run]) -> Table:
    header = ["run", "engine", "model", "benchmark", "n", "temperature", "top_p", "max_tokens", "template",
              "versions", "directory"]
    rows = []
    for r in runs:
        c = r.config
        versions = ", ".join(f"{k} {v}" for k, v in r.versions.items()) or "–"
        rows.append([r.label, str(c.get("engine", "–")), r.model, r.benchmark, _fmt(c.get("n")),
                     _fmt(c.get("temperature")), _fmt(c.get("top_p")), _fmt(c.get("max_tokens")),
                     str(c.get("template", "–")), versions, str(r.path)])
    return header, rows


def _fits_table(runs: list[Run]) -> Table:
    header = ["run", "benchmark", "strategy", "F_max [95% CI]", "p [95% CI]", "N* [95% CI]", "ε", "RMSE",
              "budgets", "bootstrap"]
    rows = []

    def ci(v: Any, lo_hi: Any, digits: int = 3) -> str:
        s = _fmt(v, digits)
        if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
            s += f" [{_fmt(lo_hi[0], digits)}, {_fmt(lo_hi[1], digits)}]"
        return s

    for r in runs:
        for s, f in r.fits.items():
            rows.append([r.label, r.benchmark, s, ci(f.get("f_max"), f.get("f_max_ci")), ci(f.get("p"), f.get("p_ci")),
                         ci(f.get("n_star"), f.get("n_star_ci")), _fmt(f.get("epsilon")), _fmt(f.get("rmse"), 2),
                         ", ".join(_fmt(b) for b in f.get("budgets") or []) or "–", _fmt(f.get("n_boot"))])
    return header, rows


def _frontier_table(runs: list[Run]) -> Table:
    header = ["run", "strategy", "budget", "tokens", "critical-path tokens", "wall s", "accuracy %"]
    pts = [(r, p) for r in runs for p in r.points]
    on = pareto_frontier([p for _, p in pts], cost="tokens")
    pts, on = zip(*sorted(zip(pts, on), key=lambda t: _num(t[0][1].get("tokens")))) if pts else ((), ())
    rows = [[r.label, str(p.get("strategy")), _fmt(p.get("budget")), _fmt(p.get("tokens")),
             _fmt(p.get("critical_path_tokens")), _fmt(p.get("wall_s")), _pct(p.get("accuracy"), p.get("accuracy_se"))]
            for (r, p), keep in zip(pts, on) if keep]
    return header, rows


# ----------------------------------------------------------------------------------------------
# Plots


class _Style:
    """Stable colour per strategy and marker/colour per run across every figure."""

    def __init__(self, runs: list[Run]):
        strategies: list[str] = []
        for r in runs:
            strategies += [s for s in r.strategies() if s not in strategies]
        self.strategy_color = {s: STRATEGY_COLORS[i % len(STRATEGY_COLORS)] for i, s in enumerate(strategies)}
        self.run_marker = {r.label: RUN_MARKERS[i % len(RUN_MARKERS)] for i, r in enumerate(runs)}
        self.run_color = {r.label: RUN_COLORS[i % len(RUN_COLORS)] for i, r in enumerate(runs)}
        self.strategies = strategies


def _figure(n_panels: int) -> tuple[Figure, list[Any]]:
    cols = min(MAX_COLS, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(PANEL_W * cols, PANEL_H * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _legend(fig: Figure, handles: list[Any]) -> None:
    """One legend below the panels, with as many columns as fit the figure's width."""
    if not handles:
        return
    widest = max(len(h.get_label()) for h in handles) * 0.075 + 0.7  # inches per entry at fontsize 8
    ncols = max(1, min(len(handles), int(fig.get_figwidth() / widest)))
    fig.set_figheight(fig.get_figheight() + 0.2 * math.ceil(len(handles) / ncols) + 0.15)  # room below the panels
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=8, frameon=False)


def _tx(text: str) -> str:
    """Plot text with "$" escaped, so that a label never switches matplotlib into mathtext."""
    return str(text).replace("$", r"\$")


def _human(v: float, _pos: Any = None) -> str:
    """Tick label: 300, 1.5k, 20k, 1.2M, 0.5."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _set_cost_scale(ax: Any, values: list[float]) -> None:
    """Log x when the costs are positive and span more than a factor 8; plain-number ticks either way."""
    pos = [v for v in values if math.isfinite(v)]
    if pos and min(pos) > 0 and max(pos) / min(pos) > 8:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(1.0, 10.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(_human))


def _percent_axis(ax: Any) -> None:
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(True, which="major", alpha=0.3)


def _by_benchmark(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.benchmark, []).append(r)
    return out


def _strategy_handles(style: _Style, strategies: list[str]) -> list[Any]:
    return [Line2D([], [], color=style.strategy_color[s], marker="o", lw=1.2, label=_tx(s))
            for s in style.strategies if s in strategies]


def _run_handles(style: _Style, runs: list[Run]) -> list[Any]:
    return [Line2D([], [], color="0.3", marker=style.run_marker[r.label], lw=0, label=_tx(r.label)) for r in runs]


def _cost_figure(runs: list[Run], style: _Style, cost: str, xlabel: str) -> Figure | None:
    groups = {b: rs for b, rs in _by_benchmark(runs).items() if any(r.points for r in rs)}
    if not groups:
        return None
    fig, axes = _figure(len(groups))
    used_strategies: list[str] = []
    for ax, (bench, rs) in zip(axes, groups.items()):
        pts = [(r, p) for r in rs for p in r.points]
        on = pareto_frontier([p for _, p in pts], cost=cost)
        xs_all = [_num(p.get(cost)) for _, p in pts]
        for r in rs:
            # strategies with fewer points last, so that plain@1 is not hidden under an identical majority@1
            counts = {s: sum(p.get("strategy") == s for p in r.points) for s in r.strategies()}
            for s in sorted(counts, key=lambda s: -counts[s]):
                series = sorted(((_num(p.get(cost)), _num(p.get("accuracy")), _num(p.get("accuracy_se")), keep)
                                 for (rr, p), keep in zip(pts, on) if rr is r and p.get("strategy") == s),
                                key=lambda t: t[0])
                series = [t for t in series if math.isfinite(t[0]) and math.isfinite(t[1])]
                if not series:
                    continue
                if s not in used_strategies:
                    used_strategies.append(s)
                color, marker = style.strategy_color[s], style.run_marker[r.label]
                x, y, se, keep = (list(v) for v in zip(*series))
                ax.plot(x, y, color=color, lw=1.0, alpha=0.45, zorder=2)
                yerr = [e if math.isfinite(e) else 0.0 for e in se]
                ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.8, alpha=0.35, zorder=2)
                for xi, yi, k in zip(x, y, keep):
                    if k:
                        ax.plot([xi], [yi], marker=marker, ms=7, color=color, mec="black", mew=0.6, lw=0, zorder=4)
                    else:
                        ax.plot([xi], [yi], marker=marker, ms=6, mfc="white", mec=color, mew=1.2, lw=0, alpha=0.55,
                                zorder=3)
        front = sorted((_num(p.get(cost)), _num(p.get("accuracy"))) for (_, p), k in zip(pts, on) if k)
        if front:
            fx, fy = [f[0] for f in front], [f[1] for f in front]
            xmax = max(v for v in xs_all if math.isfinite(v))
            ax.step(fx + [xmax], fy + [fy[-1]], where="post", color="black", lw=1.4, alpha=0.8, zorder=1)
        _set_cost_scale(ax, xs_all)
        _percent_axis(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.set_title(_tx(f"{bench}: accuracy vs {xlabel}"), fontsize=10)
    plotted = [r for rs in groups.values() for r in rs if r.points]
    handles = _strategy_handles(style, used_strategies) + _run_handles(style, plotted)
    handles += [Line2D([], [], color="black", lw=1.4, label="Pareto frontier"),
                Line2D([], [], color="0.4", marker="o", mfc="white", lw=0, alpha=0.6, label="dominated (hollow)")]
    _legend(fig, handles)
    return fig


def _log2_axis(ax: Any) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _passk_figure(runs: list[Run], style: _Style) -> Figure | None:
    groups = {}
    for b, rs in _by_benchmark(runs).items():
        rs = [r for r in rs if r.metrics.get("k")]
        if rs:
            groups[b] = rs
    if not groups:
        return None
    fig, axes = _figure(len(groups))
    kinds = [("pass@k", "-", "pass@k (coverage)"), ("maj@k", "--", "maj@k"), ("avg@k", ":", "avg@k")]
    used_kinds: set[str] = set()
    for ax, (bench, rs) in zip(axes, groups.items()):
        for r in rs:
            ks = [_num(k) for k in r.metrics.get("k") or []]
            for name, ls, _ in kinds:
                vals = [_num(v) for v in r.metrics.get(name) or []]
                if len(vals) != len(ks):
                    continue
                xy = [(k, v) for k, v in zip(ks, vals) if k > 0 and math.isfinite(v)]
                if not xy:
                    continue
                used_kinds.add(name)
                ax.plot([a for a, _ in xy], [b for _, b in xy], ls=ls, color=style.run_color[r.label],
                        marker=style.run_marker[r.label], ms=5, lw=1.5)
                if name == "avg@k":
                    se = [_num(v) for v in r.metrics.get("avg@k_se") or []]
                    if len(se) == len(ks):
                        band = [(k, v, e) for k, v, e in zip(ks, vals, se) if k > 0 and math.isfinite(v * e)]
                        if band:
                            ax.fill_between([b[0] for b in band], [b[1] - b[2] for b in band],
                                            [b[1] + b[2] for b in band], color=style.run_color[r.label], alpha=0.12)
        _log2_axis(ax)
        _percent_axis(ax)
        ax.set_xlabel("k (samples, log2)")
        ax.set_ylabel("accuracy")
        ax.set_title(_tx(f"{bench}: pass@k, maj@k, avg@k vs k"), fontsize=10)
    handles = [Line2D([], [], color=style.run_color[r.label], marker=style.run_marker[r.label], lw=1.5,
                      label=_tx(r.label)) for rs in groups.values() for r in rs]
    handles += [Line2D([], [], color="0.3", ls=ls, lw=1.5, label=lab) for name, ls, lab in kinds if name in used_kinds]
    _legend(fig, handles)
    return fig


def _saturation_figure(runs: list[Run], style: _Style) -> Figure | None:
    rs = [r for r in runs if r.fits or any(_num(p.get("budget")) >= 1 for p in r.points)]
    if not rs:
        return None
    fig, axes = _figure(len(rs))
    used_strategies: list[str] = []
    for ax, r in zip(axes, rs):
        marker = style.run_marker[r.label]
        bmax = 1.0
        texts = []
        counts = {s: sum(p.get("strategy") == s for p in r.points) for s in r.strategies()}
        for s in sorted(counts, key=lambda s: -counts[s]):  # single points on top, as in the cost plots
            color = style.strategy_color[s]
            pts = sorted((p for p in r.points if p.get("strategy") == s and _num(p.get("budget")) >= 1),
                         key=lambda p: _num(p.get("budget")))
            fit = r.fits.get(s)
            if pts:
                x = [_num(p.get("budget")) for p in pts]
                y = [_num(p.get("accuracy")) for p in pts]
                se = [_num(p.get("accuracy_se")) for p in pts]
                ax.errorbar(x, y, yerr=[e if math.isfinite(e) else 0.0 for e in se], fmt=marker, color=color, ms=6,
                            elinewidth=0.8, capsize=2, lw=0, zorder=3)
                bmax = max(bmax, max(x))
            elif fit and fit.get("budgets"):
                x = [_num(b) for b in fit["budgets"]]
                ax.plot(x, [_num(v) for v in fit.get("observed") or []], marker, color=color, ms=6, zorder=3)
                bmax = max(bmax, max(x))
            if not pts and not fit:
                continue
            if s not in used_strategies:
                used_strategies.append(s)
            if fit:
                f_max, p = _num(fit.get("f_max")), _num(fit.get("p"))
                n_star = int(_num(fit.get("n_star"))) if math.isfinite(_num(fit.get("n_star"))) else 0
                texts.append((s, color, f"{_tx(s)}: F_max={f_max:.2f}, p={p:.3g}, N*={n_star}"))
                xmax = max(bmax, float(max(fit.get("budgets") or [1])))
                shown_nstar = 1 <= n_star <= 4 * xmax
                hi = max(xmax, n_star) if shown_nstar else xmax
                grid = np.geomspace(1.0, hi * 1.15, 200)
                ax.plot(grid, saturation_curve(grid, f_max, p), color=color, lw=1.6, zorder=2)
                if shown_nstar:
                    fy = saturation_curve(n_star, f_max, p)
                    ax.axvline(n_star, color=color, ls=":", lw=1.0, alpha=0.8)
                    ax.plot([n_star], [fy], marker="*", ms=13, color=color, mec="black", mew=0.6, zorder=5)
                    ax.annotate(f"N*={n_star}", (n_star, fy), textcoords="offset points", xytext=(4, -14),
                                fontsize=8, color=color)
                bmax = max(bmax, hi)
        for i, (_, color, text) in enumerate(texts):
            ax.text(0.98, 0.04 + 0.065 * i, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5,
                    color=color, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
        if not r.fits:
            ax.text(0.02, 0.96, "no saturation fits in this run", transform=ax.transAxes, fontsize=8, va="top",
                    color="0.35")
        _log2_axis(ax)
        _percent_axis(ax)
        ax.set_xlabel("budget N (log2)")
        ax.set_ylabel("accuracy")
        ax.set_title(_tx(f"{r.label}: accuracy vs N, saturation fits"), fontsize=10)
    handles = _strategy_handles(style, used_strategies) + _run_handles(style, rs)
    handles += [Line2D([], [], color="0.3", lw=1.6, label="fit F_max(1-(1-p)^N)"),
                Line2D([], [], color="0.3", marker="*", ms=11, lw=0, label="N*: next sample gains < ε")]
    _legend(fig, handles)
    return fig


# ----------------------------------------------------------------------------------------------
# The report


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1500px;padding:0 16px;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin-bottom:.3em}.meta{color:#555;font-size:.9em}
.tw{overflow-x:auto;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9em;margin-top:.3em}.note{color:#444;font-size:.9em}
"""

_FIGURES = [
    ("accuracy_vs_tokens.png", "Accuracy vs mean generated tokens per problem",
     "Every (strategy, budget) point of every run. Black staircase: the Pareto frontier over all points of the "
     "benchmark. Filled markers are on it; hollow, faded markers are dominated (another point costs no more and "
     "scores at least as high). Error bars: ±1 standard error over problems."),
    ("accuracy_vs_critical_path.png", "Accuracy vs critical-path tokens (latency proxy)",
     "The same points against tokens on the longest dependent chain; the frontier is recomputed for this cost."),
    ("accuracy_vs_wall_time.png", "Accuracy vs wall time per problem",
     "The same points against mean wall seconds per problem; the frontier is recomputed for this cost."),
    ("pass_maj_at_k.png", "pass@k, maj@k and avg@k vs k",
     "Unbiased pass@k (oracle coverage, the ceiling), majority vote maj@k, and mean single-sample accuracy avg@k "
     "with a ±1 SE band, on a log2 k axis."),
    ("saturation_fits.png", "Accuracy vs budget N with saturation fits",
     "Observed accuracy per strategy (markers, ±1 SE) and the fitted F(N) = F_max (1 - (1 - p)^N). Star and "
     "dotted line: N*, the smallest N whose next sample would gain less than ε. The F_max factor and the "
     "discrete N* are our derivation from the TTSPM model (see eval/scaling.py)."),
]


def write_report(run_dirs: Sequence[Path], out_dir: Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (with PNG plots beside it) and a self-contained ``report.html`` to out_dir.

    ``run_dirs`` each hold a ``results.json``. Returns (markdown path, html path).
    """
    if not run_dirs:
        raise ValueError("write_report needs at least one run directory")
    runs = [load_run(Path(d)) for d in run_dirs]
    _unique_labels(runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    style = _Style(runs)
    benches = _by_benchmark(runs)
    title = title or "Test-time scaling report: " + ", ".join(benches)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    builders = {
        "accuracy_vs_tokens.png": lambda: _cost_figure(runs, style, "tokens", "generated tokens / problem"),
        "accuracy_vs_critical_path.png": lambda: _cost_figure(runs, style, "critical_path_tokens",
                                                              "critical-path tokens / problem"),
        "accuracy_vs_wall_time.png": lambda: _cost_figure(runs, style, "wall_s", "wall seconds / problem"),
        "pass_maj_at_k.png": lambda: _passk_figure(runs, style),
        "saturation_fits.png": lambda: _saturation_figure(runs, style),
    }
    pngs: dict[str, bytes] = {}
    for name, _, _ in _FIGURES:
        fig = builders[name]()
        if fig is None:
            continue
        path = out_dir / name
        fig.savefig(path, dpi=DPI, format="png", facecolor="white")
        pngs[name] = path.read_bytes()

    sections: list[tuple[str, list[tuple[str, Any]]]] = []  # (heading, [(kind, payload)])
    summary = []
    for bench, rs in benches.items():
        summary += [("h3", bench), ("table", _summary_table(rs))]
    summary.append(("note", "Accuracy cells: mean ± 1 standard error over graded problems, in percent, at the "
                            "strategy's largest budget N. pass@k is the unbiased estimator; maj@k is majority vote."))
    sections.append(("Summary per benchmark", summary))
    sections.append(("Runs and protocol", [("table", _protocol_table(runs))]))
    figs = []
    for name, heading, caption in _FIGURES:
        if name in pngs:
            figs.append(("figure", (name, heading, caption)))
        else:
            figs.append(("note", f"{heading}: nothing to plot (no run has the data)."))
    sections.append(("Plots", figs))
    fits = _fits_table(runs)
    sections.append(("Saturation fits", [("table", fits)] if fits[1] else [("note", "No run has saturation fits.")]))
    front = []
    for bench, rs in benches.items():
        t = _frontier_table(rs)
        if t[1]:
            front += [("h3", bench), ("table", t)]
    sections.append(("Pareto frontier (cost: generated tokens)", front or [("note", "No points.")]))

    md = [f"# {title}", "", f"Generated {now} from {len(runs)} run(s): " + ", ".join(r.label for r in runs), ""]
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">Generated {html.escape(now)} from {len(runs)} run(s): '
            + html.escape(", ".join(r.label for r in runs)) + "</p>"]
    for heading, items in sections:
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, payload in items:
            if kind == "h3":
                md += [f"### {payload}", ""]
                body.append(f"<h3>{html.escape(payload)}</h3>")
            elif kind == "table":
                md += [_md_table(payload), ""]
                body.append(_html_table(payload))
            elif kind == "note":
                md += [payload, ""]
                body.append(f'<p class="note">{html.escape(payload)}</p>')
            elif kind == "figure":
                name, fig_heading, caption = payload
                md += [f"### {fig_heading}", "", f"![{fig_heading}]({name})", "", caption, ""]
                data = base64.b64encode(pngs[name]).decode("ascii")
                body.append(f'<figure id="{html.escape(name.removesuffix(".png"))}"><h3>{html.escape(fig_heading)}'
                            f'</h3><img alt="{html.escape(fig_heading)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return md_path, html_path
