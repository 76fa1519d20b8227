"""Matplotlib figures for the scaling report (see ``eval.report`` for what each plot shows).

Figures are drawn on matplotlib's Agg canvas directly, so the process-wide pyplot backend is left
alone. Colour encodes the strategy and the marker shape the run, in every plot except pass@k, where
colour and marker both encode the run.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from eval.report_data import Run, by_benchmark, as_number, fit_info
from eval.scaling import pareto_frontier, saturation_curve


STRATEGY_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                   "#bcbd22", "#7f7f7f"]
RUN_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
RUN_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
DPI = 120
PANEL_W, PANEL_H = 5.6, 4.2
MAX_COLS = 2


class Style:
    """Stable colour per strategy and marker/colour per run across every figure."""

    def __init__(self, runs: list[Run]):
        strategies: list[str] = []
        for r in runs:
            strategies += [s for s in r.strategies() if s not in strategies]
        self.strategy_color = {s: STRATEGY_COLORS[i % len(STRATEGY_COLORS)] for i, s in enumerate(strategies)}
        # what each strategy's budget counts (its points' axis), so that a legend can say which is which
        self.strategy_axis: dict[str, str] = {}
        for r in runs:
            for p in r.points:
                self.strategy_axis.setdefault(str(p.get("strategy")), p.get("axis") or "samples")
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
    """Accuracy in percent, never below 0 (an error bar of a 0% point would otherwise open a negative range)."""
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(True, which="major", alpha=0.3)
    low, high = ax.get_ylim()
    ax.set_ylim(max(0.0, low), max(high, 0.05))


def _short_budget(point: dict[str, Any]) -> str:
    """A point's label on the cost plots: its samples (N4), its cap (c256) or its rounds (r2); decodes carry none."""
    axis, budget = point.get("axis") or "samples", as_number(point.get("budget"))
    if axis == "decodes" or not math.isfinite(budget):
        return ""
    return {"samples": "N", "token_cap": "c", "rounds": "r"}.get(axis, "") + f"{budget:g}"


# What a strategy's budget axis is, as a legend says it: parallel samples, sequential rounds or token caps.
PARADIGM = {"samples": "parallel: N samples", "rounds": "sequential: r rounds", "token_cap": "sequential: token cap c",
            "decodes": "parallel-thinking decodes"}


def _strategy_handles(style: Style, strategies: list[str]) -> list[Any]:
    def label(s: str) -> str:
        axis = style.strategy_axis.get(s)
        return _tx(f"{s} ({PARADIGM.get(axis, axis)})" if axis else s)

    return [Line2D([], [], color=style.strategy_color[s], marker="o", lw=1.2, label=label(s))
            for s in style.strategies if s in strategies]


def _run_handles(style: Style, runs: list[Run]) -> list[Any]:
    return [Line2D([], [], color="0.3", marker=style.run_marker[r.label], lw=0, label=_tx(r.label)) for r in runs]


def cost_figure(runs: list[Run], style: Style, cost: str, xlabel: str) -> Figure | None:
    groups = {b: rs for b, rs in by_benchmark(runs).items() if any(r.points for r in rs)}
    if not groups:
        return None
    fig, axes = _figure(len(groups))
    used_strategies: list[str] = []
    for ax, (bench, rs) in zip(axes, groups.items()):
        pts = [(r, p) for r in rs for p in r.points]
        on = pareto_frontier([p for _, p in pts], cost=cost)
        xs_all = [as_number(p.get(cost)) for _, p in pts]
        for r in rs:
            # strategies with fewer points last, so that plain@1 is not hidden under an identical majority@1
            counts = {s: sum(p.get("strategy") == s for p in r.points) for s in r.strategies()}
            for s in sorted(counts, key=lambda s: -counts[s]):
                series = sorted(((as_number(p.get(cost)), as_number(p.get("accuracy")),
                                  as_number(p.get("accuracy_se")), keep, _short_budget(p))
                                 for (rr, p), keep in zip(pts, on) if rr is r and p.get("strategy") == s),
                                key=lambda t: t[0])
                series = [t for t in series if math.isfinite(t[0]) and math.isfinite(t[1])]
                if not series:
                    continue
                if s not in used_strategies:
                    used_strategies.append(s)
                color, marker = style.strategy_color[s], style.run_marker[r.label]
                x, y, se, keep, labels = (list(v) for v in zip(*series))
                for xi, yi, text in zip(x, y, labels):  # which N (or cap) each point is
                    if text:
                        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=6.5,
                                    color=color, alpha=0.9)
                ax.plot(x, y, color=color, lw=1.0, alpha=0.45, zorder=2)
                yerr = [e if math.isfinite(e) else 0.0 for e in se]
                ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.8, alpha=0.35, zorder=2)
                for xi, yi, k in zip(x, y, keep):
                    if k:
                        ax.plot([xi], [yi], marker=marker, ms=7, color=color, mec="black", mew=0.6, lw=0, zorder=4)
                    else:
                        ax.plot([xi], [yi], marker=marker, ms=6, mfc="white", mec=color, mew=1.2, lw=0, alpha=0.55,
                                zorder=3)
        front = sorted((as_number(p.get(cost)), as_number(p.get("accuracy"))) for (_, p), k in zip(pts, on) if k)
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


def passk_figure(runs: list[Run], style: Style) -> Figure | None:
    groups = {}
    for b, rs in by_benchmark(runs).items():
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
            ks = [as_number(k) for k in r.metrics.get("k") or []]
            for name, ls, _ in kinds:
                vals = [as_number(v) for v in r.metrics.get(name) or []]
                if len(vals) != len(ks):
                    continue
                xy = [(k, v) for k, v in zip(ks, vals) if k > 0 and math.isfinite(v)]
                if not xy:
                    continue
                used_kinds.add(name)
                ax.plot([a for a, _ in xy], [b for _, b in xy], ls=ls, color=style.run_color[r.label],
                        marker=style.run_marker[r.label], ms=5, lw=1.5)
                if name == "avg@k":
                    se = [as_number(v) for v in r.metrics.get("avg@k_se") or []]
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


# Per budget axis: the x label, the fit's saturation-point symbol, and what the figure title calls the axis.
AXES = {"samples": ("samples N (log2)", "N", "samples N"), "rounds": ("rethinking rounds r (log2)", "r", "rounds r"),
        "token_cap": ("thinking-token cap c (tokens, log2)", "c", "token cap c")}
PASSK_FIT_STYLE = {False: ("0.25", "-"), True: ("0.25", "-.")}  # pass@N fits: F_max free / F_max fixed at 1


def saturation_figure(runs: list[Run], style: Style) -> Figure | None:
    """Accuracy vs sample count N, with the fits to pass@N (coverage) and to the selection strategies."""
    return scaling_figure(runs, style, "samples")


def scaling_figure(runs: list[Run], style: Style, axis: str) -> Figure | None:
    """Accuracy vs one budget axis (samples N, rethinking rounds r or token caps c), per run, with the fits
    made on that axis. Points of other axes never appear: each axis has its own figure."""
    xlabel, symbol, name = AXES[axis]

    def on_axis(p: dict[str, Any]) -> bool:
        return (p.get("axis") or "samples") == axis and as_number(p.get("budget")) >= 1

    def fits_of(r: Run) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        return {key: (f, info) for key, f in r.fits.items() if (info := fit_info(key, f))["axis"] == axis}

    rs = [r for r in runs if fits_of(r) or any(on_axis(p) for p in r.points)]
    if not rs:
        return None
    fig, axes = _figure(len(rs))
    used_strategies: list[str] = []
    passk_kinds: set[bool] = set()
    for ax, r in zip(axes, rs):
        marker = style.run_marker[r.label]
        bmax = 1.0
        texts = []
        fits = fits_of(r)
        by_strategy = {info["strategy"]: f for f, info in fits.values() if info["strategy"] is not None}
        counts = {s: sum(p.get("strategy") == s for p in r.points) for s in r.strategies()}
        drawn = []  # (fit, colour, line style, legend text)
        for s in sorted(counts, key=lambda s: -counts[s]):  # single points on top, as in the cost plots
            color = style.strategy_color[s]
            pts = sorted((p for p in r.points if p.get("strategy") == s and on_axis(p)),
                         key=lambda p: as_number(p.get("budget")))
            fit = by_strategy.get(s)
            if pts:
                x = [as_number(p.get("budget")) for p in pts]
                y = [as_number(p.get("accuracy")) for p in pts]
                se = [as_number(p.get("accuracy_se")) for p in pts]
                ax.errorbar(x, y, yerr=[e if math.isfinite(e) else 0.0 for e in se], fmt=marker, color=color, ms=6,
                            elinewidth=0.8, capsize=2, lw=0 if fit else 1.0, zorder=3)
                bmax = max(bmax, max(x))
            elif fit and fit.get("budgets"):
                x = [as_number(b) for b in fit["budgets"]]
                ax.plot(x, [as_number(v) for v in fit.get("observed") or []], marker, color=color, ms=6, zorder=3)
                bmax = max(bmax, max(x))
            if not pts and not fit:
                continue
            if s not in used_strategies:
                used_strategies.append(s)
            if fit:
                drawn.append((fit, color, "-", s))
        for f, info in fits.values():
            if info["strategy"] is None:  # a fit to pass@N (coverage)
                fixed = bool(f.get("f_max_fixed"))
                passk_kinds.add(fixed)
                color, ls = PASSK_FIT_STYLE[fixed]
                drawn.append((f, color, ls, "pass@N, F_max=1" if fixed else "pass@N"))
        for fit, color, ls, who in drawn:
            f_max, p = as_number(fit.get("f_max")), as_number(fit.get("p"))
            n_star = int(as_number(fit.get("n_star"))) if math.isfinite(as_number(fit.get("n_star"))) else 0
            texts.append((color, f"{_tx(who)}: F_max={f_max:.2f}, p={p:.3g}, {symbol}*={n_star}"))
            xmax = max(bmax, float(max(fit.get("budgets") or [1])))
            shown_nstar = 1 <= n_star <= 4 * xmax
            hi = max(xmax, n_star) if shown_nstar else xmax
            grid = np.geomspace(1.0, hi * 1.15, 200)
            ax.plot(grid, saturation_curve(grid, f_max, p), color=color, ls=ls, lw=1.6, zorder=2)
            if shown_nstar:
                fy = saturation_curve(n_star, f_max, p)
                ax.axvline(n_star, color=color, ls=":", lw=1.0, alpha=0.8)
                ax.plot([n_star], [fy], marker="*", ms=13, color=color, mec="black", mew=0.6, zorder=5)
                ax.annotate(f"{symbol}*={n_star}", (n_star, fy), textcoords="offset points", xytext=(4, -14),
                            fontsize=8, color=color)
            bmax = max(bmax, hi)
        ks = [as_number(k) for k in r.metrics.get("k") or []]
        ceiling = [as_number(v) for v in r.metrics.get("pass@k") or []]
        if axis == "samples" and ks and len(ceiling) == len(ks):  # the oracle ceiling: pass@N
            xy = [(k, v) for k, v in zip(ks, ceiling) if k >= 1 and math.isfinite(v)]
            ax.plot([a for a, _ in xy], [b for _, b in xy], ls="--", color="0.55", lw=1.2, zorder=1)
        for i, (color, text) in enumerate(texts):
            ax.text(0.98, 0.04 + 0.065 * i, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5,
                    color=color, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
        if not fits and axis != "token_cap":
            ax.text(0.02, 0.96, f"no saturation fits on {name} in this run", transform=ax.transAxes, fontsize=8,
                    va="top", color="0.35")
        _log2_axis(ax)
        _percent_axis(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        title = "saturation fits" if axis != "token_cap" else "budget forcing"
        ax.set_title(_tx(f"{r.label}: accuracy vs {name}, {title}"), fontsize=10)
    handles = _strategy_handles(style, used_strategies) + _run_handles(style, rs)
    if axis == "samples":
        handles.append(Line2D([], [], color="0.55", ls="--", lw=1.2, label="pass@N observed (oracle ceiling)"))
        for fixed in sorted(passk_kinds):
            color, ls = PASSK_FIT_STYLE[fixed]
            handles.append(Line2D([], [], color=color, ls=ls, lw=1.6, label="fit to pass@N (coverage)" +
                                  (", F_max = 1 (TTSPM's bare form)" if fixed else ", F_max free")))
    if any(fits_of(r) for r in rs):
        handles += [Line2D([], [], color="0.3", lw=1.6, label=f"fit F_max(1-(1-p)^{symbol}) to a strategy's accuracy"),
                    Line2D([], [], color="0.3", marker="*", ms=11, lw=0,
                           label=f"{symbol}*: the next {'sample' if axis == 'samples' else 'round'} gains < ε")]
    _legend(fig, handles)
    return fig
