"""Scaling reports: a Markdown file plus a self-contained HTML page comparing eval runs.

``write_report(run_dirs, out_dir)`` reads ``results.json`` from each run directory and writes
``report.md`` (tables, with the plots as PNG files beside it) and ``report.html``. The HTML holds
the same tables, with the same plots embedded as base64 ``data:`` PNGs. It uses no external
scripts, stylesheets or fonts, so it can be mailed or archived as one file.

The plots follow the usual test-time-scaling conventions (as in DeepSeek-R1, open-r1 and lighteval
reports):

* accuracy vs mean tokens per problem (a decode: its whole response), vs critical-path tokens, and vs wall time. Every
  (strategy, budget) point of every run is shown. The Pareto frontier over all points of a
  benchmark is drawn as a staircase, and dominated points are hollow and faded;
* pass@k, maj@k and avg@k vs k on a log2 axis;
* accuracy vs budget on a log2 axis, per run, one figure per kind of budget (samples N, rethinking
  rounds r, thinking-token caps c: never two on one axis), with the fitted saturation curves
  F(N) = F_max (1 - (1-p)^N) and their saturation budgets N* (see ``eval.scaling``): on N, fits to
  pass@N (coverage) and to the selection strategies, each labelled.

Colour encodes the strategy and the marker shape the run, in every plot except pass@k, where
colour and marker both encode the run. Runs are grouped by benchmark: points from different
benchmarks never share a frontier. Plots are drawn on matplotlib's Agg canvas directly, so the
process-wide pyplot backend is left alone.

Layout: ``eval.report_data`` loads runs (``Run``, ``load_run``); ``eval.report_plots`` draws the
matplotlib figures; this module formats the Markdown/HTML tables and assembles both pages.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.report_data import Run, by_benchmark, as_number, fit_info, unique_labels, load_run
from eval.report_plots import DPI, cost_figure, passk_figure, saturation_figure, scaling_figure, Style
from eval.scaling import pareto_frontier

__all__ = ["write_report", "load_run"]


# ----------------------------------------------------------------------------------------------
# Formatting helpers


def _pct(v: Any, se: Any = None) -> str:
    f = as_number(v)
    if not math.isfinite(f):
        return "–"
    s = f"{100 * f:.1f}"
    e = as_number(se)
    if math.isfinite(e):
        s += f" ± {100 * e:.1f}"
    return s


def _fmt(v: Any, digits: int = 3) -> str:
    f = as_number(v)
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
    return as_number(vals[i]), int(ks[i])


def _point_at_max_budget(run: Run, strategy: str) -> dict[str, Any] | None:
    pts = [p for p in run.points if p.get("strategy") == strategy]
    if not pts:
        return None
    def budget(point) -> float:
        value = as_number(point.get("budget"))
        return value if math.isfinite(value) else -math.inf

    return max(pts, key=budget)


def budget_label(point: dict[str, Any]) -> str:
    """What a point's budget counts, in a few characters: N=4 samples, cap=256 tokens, r=2 rounds, decodes."""
    axis, budget = point.get("axis") or "samples", _fmt(point.get("budget"))
    return {"samples": f"N={budget}", "token_cap": f"cap={budget}", "rounds": f"r={budget}",
            "decodes": "decodes"}.get(axis, f"{axis}={budget}")


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
    header += [f"{s} acc % @max budget" for s in strategies]
    header += ["pass@1 %", "pass@k % (max k)", "maj@k % (max k)", "graded", "excluded", "by fallback %", "grader"]
    rows = []
    for r in runs:
        row = [r.label, r.benchmark, r.model, _fmt(r.config.get("n")), ", ".join(r.strategies()) or "–"]
        for s in strategies:
            p = _point_at_max_budget(r, s)
            cell = "–" if p is None else f"{_pct(p.get('accuracy'), p.get('accuracy_se'))} ({budget_label(p)})"
            row.append(cell)
        p1, _ = _metric_at(r.metrics, "pass@k", 1)
        pk, kmax = _metric_at(r.metrics, "pass@k", None)
        mk, kmaj = _metric_at(r.metrics, "maj@k", None)
        row += [_pct(p1), "–" if kmax is None else f"{_pct(pk)} (k={kmax})",
                "–" if kmaj is None else f"{_pct(mk)} (k={kmaj})"]
        total, graded = r.problems.get("total"), r.problems.get("graded")
        row.append(f"{_fmt(graded)}/{_fmt(total)}" if graded is not None or total is not None else "–")
        share = r.extraction.get("fallback_share")
        row += [_fmt(r.problems.get("excluded")), "–" if share is None else _pct(share), _grader_text(r.grader)]
        rows.append(row)
    return header, rows


def _protocol_table(runs: list[Run]) -> Table:
    header = ["run", "engine", "model", "benchmark", "n", "temperature", "top_p", "max_tokens", "template",
              "versions", "directory"]
    rows = []
    for r in runs:
        c = r.config
        pool = c.get("pool") or c  # the pool's sampling block (results written before it was nested: flat keys)
        versions = ", ".join(f"{k} {v}" for k, v in r.versions.items()) or "–"
        rows.append([r.label, str(c.get("engine", "–")), r.model, r.benchmark, _fmt(c.get("n")),
                     _fmt(pool.get("temperature")), _fmt(pool.get("top_p")), _fmt(pool.get("max_tokens")),
                     str(c.get("template", "–")), versions, str(r.path)])
    return header, rows


FORMAT_NOTE = (
    "What the shares mean for models you trained: under Seen SFT (plain causal attention over the paths) a later "
    "path learns to copy an earlier path's answer, so paths that agree are not independent evidence; under Unseen "
    "SFT the paths are exchangeable (each sees the same context), so greedy decoding writes the same path twice "
    "(identical branches near 100%): decode such models at temperature > 0.")


def _format_table(runs: list[Run]) -> Table:
    header = ["run", "strategy", "decodes", "valid format %", "parallel responses % (Parallel-R1 parallel ratio)",
              "identical branches % (of forked)", "tokens in blocks % (ThreadWeaver parallel_ratio)",
              "speedup (per problem, mean)"]
    rows = []
    for r in runs:
        for strategy, stats in r.format_stats.items():
            speedup = as_number(stats.get("speedup"))
            rows.append([r.label, strategy, _fmt(stats.get("decodes")), _pct(stats.get("valid_format")),
                         _pct(stats.get("parallel_response_rate")), _pct(stats.get("identical_branches")),
                         _pct(stats.get("parallel_token_share")),
                         f"{speedup:.2f}x" if math.isfinite(speedup) else "–"])
    return header, rows


SPEEDUP_NOTE = (
    "Speedup: per problem, the mean over its decodes of response tokens / critical-path tokens (both counted "
    "as ThreadWeaver's reward counts them, inserted headers included), then the mean over problems, as "
    "ThreadWeaver's tables average it. Its paper divides by a separately trained sequential model's length; "
    "here the baseline is the same response written out in sequence.")


def _accuracy_grid(runs: list[Run]) -> Table:
    """Strategy x budget: every point's accuracy, one row per (run, strategy), budgets as columns."""
    def order(label: str) -> tuple[int, float]:
        kind, _, value = label.partition("=")
        return ({"N": 0, "r": 1, "cap": 2}.get(kind, 3), as_number(value) if value else 0.0)

    labels = sorted({budget_label(p) for r in runs for p in r.points}, key=order)
    header = ["run", "strategy"] + labels + ["estimator"]
    rows = []
    for r in runs:
        for s in r.strategies():
            pts = {budget_label(p): p for p in r.points if p.get("strategy") == s}
            if not pts:
                continue
            estimators = sorted({str(p.get("estimator")) for p in pts.values() if p.get("estimator")})
            rows.append([r.label, s] + [_pct(pts[b].get("accuracy"), pts[b].get("accuracy_se")) if b in pts else ""
                                        for b in labels] + ["; ".join(estimators) or "–"])
    return header, rows


def _answers_table(runs: list[Run]) -> Table:
    """Per strategy at its largest budget: how often nothing was extracted and how often the cap cut a sample."""
    header = ["run", "strategy", "at", "no answer %", "truncated by the token cap %"]
    rows = []
    for r in runs:
        for s in r.strategies():
            p = _point_at_max_budget(r, s)
            if p is not None:
                rows.append([r.label, s, budget_label(p), _pct(p.get("no_answer_rate")),
                             _pct(p.get("truncation_rate"))])
    return header, rows


def _fits_table(runs: list[Run]) -> Table:
    header = ["run", "benchmark", "strategy", "fitted to", "F_max [95% CI]", "p [95% CI]", "N* (r*) [95% CI]",
              "ε", "RMSE", "budgets", "bootstrap"]
    rows = []

    def ci(v: Any, lo_hi: Any, digits: int = 3) -> str:
        s = _fmt(v, digits)
        if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
            s += f" [{_fmt(lo_hi[0], digits)}, {_fmt(lo_hi[1], digits)}]"
        return s

    for r in runs:
        for s, f in r.fits.items():
            info = fit_info(s, f)
            f_max = f"{_fmt(f.get('f_max'))} (fixed)" if f.get("f_max_fixed") else ci(f.get("f_max"), f.get("f_max_ci"))
            unit = {"samples": "N", "rounds": "r"}.get(info["axis"], info["axis"])
            rows.append([r.label, r.benchmark, info["strategy"] or "pass@N", info["label"], f_max,
                         ci(f.get("p"), f.get("p_ci")), ci(f.get("n_star"), f.get("n_star_ci")),
                         _fmt(f.get("epsilon")), _fmt(f.get("rmse"), 2),
                         (f"{unit} = " + ", ".join(_fmt(b) for b in f["budgets"])) if f.get("budgets") else "–",
                         _fmt(f.get("n_boot"))])
    return header, rows


FITS_NOTE = (
    "TTSPM's saturation form is derived for Hit@N, estimated by pass@N (coverage): those fits are the paper's "
    "object (F_max = 1 is its bare form, F_max free our extension). Fits to majority, best-of-N or fusion "
    "accuracy at N (selection) are empirical saturating summaries; the rethink fit is on rounds r (sequential).")


def _frontier_table(runs: list[Run]) -> Table:
    header = ["run", "strategy", "budget", "tokens", "critical-path tokens", "wall s", "accuracy %"]
    pts = [(r, p) for r in runs for p in r.points]
    on = pareto_frontier([p for _, p in pts], cost="tokens")
    pts, on = zip(*sorted(zip(pts, on), key=lambda t: as_number(t[0][1].get("tokens")))) if pts else ((), ())
    rows = [[r.label, str(p.get("strategy")), budget_label(p), _fmt(p.get("tokens")),
             _fmt(p.get("critical_path_tokens")), _fmt(p.get("wall_s")), _pct(p.get("accuracy"), p.get("accuracy_se"))]
            for (r, p), keep in zip(pts, on) if keep]
    return header, rows


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
    ("accuracy_vs_tokens.png", "Accuracy vs mean tokens per problem: parallel and sequential scaling",
     "Every (strategy, budget) point of every run, parallel (N samples, labelled N4) and sequential (r rethinking "
     "rounds, r2; token caps, c256) on one axis of total tokens per problem (generated; a parallel-thinking "
     "decode's whole response, its inserted tags included); the legend says each "
     "strategy's axis. Black staircase: the Pareto frontier over all points of the benchmark. Filled markers are on "
     "it; hollow, faded markers are dominated (another point costs no more and scores at least as high). Error "
     "bars: ±1 standard error over problems."),
    ("accuracy_vs_critical_path.png", "Accuracy vs critical-path tokens (latency proxy)",
     "The same points against tokens on the longest dependent chain; the frontier is recomputed for this cost."),
    ("accuracy_vs_wall_time.png", "Accuracy vs wall time per problem",
     "The same points against mean wall seconds per problem; the frontier is recomputed for this cost."),
    ("pass_maj_at_k.png", "pass@k, maj@k and avg@k vs k",
     "Unbiased pass@k (oracle coverage, the ceiling), majority vote maj@k, and mean single-sample accuracy avg@k "
     "with a ±1 SE band, on a log2 k axis."),
    ("saturation_fits.png", "Accuracy vs samples N with saturation fits (parallel)",
     "Observed accuracy per strategy (markers, ±1 SE) and the fitted F(N) = F_max (1 - (1 - p)^N) to it "
     "(selection). Grey dashes: pass@N observed, the oracle ceiling no selection from N samples can pass; dark "
     "grey lines: the fits to pass@N (coverage), solid with F_max free, dash-dot with F_max = 1. Star and dotted "
     "line: N*, the smallest N whose next sample would gain less than ε. Only sample counts are on this axis "
     "(rounds, token caps and decodes have their own). The F_max factor and the discrete N* are our derivation "
     "from the TTSPM model (see eval/scaling.py)."),
    ("rethink_rounds.png", "Accuracy vs rethinking rounds r with saturation fits (sequential)",
     "The rethink strategy: round 1 is a pool sample, each further round continues the text after a cue; "
     "accuracy of the answer standing after r rounds, and the fitted F(r) = F_max (1 - (1 - p)^r). Compare with "
     "parallel sampling at equal tokens in the accuracy-vs-tokens plot."),
    ("token_caps.png", "Accuracy vs thinking-token cap c (budget forcing, sequential)",
     "The budget strategy: thinking cut at the cap c, then the final answer forced. A token cap is not a sample "
     "count, so it has its own axis."),
]


def write_report(run_dirs: Sequence[Path], out_dir: Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (with PNG plots beside it) and a self-contained ``report.html`` to out_dir.

    ``run_dirs`` each hold a ``results.json``. Returns (markdown path, html path).
    """
    if not run_dirs:
        raise ValueError("write_report needs at least one run directory")
    runs = [load_run(Path(d)) for d in run_dirs]
    unique_labels(runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    style = Style(runs)
    benches = by_benchmark(runs)
    title = title or "Test-time scaling report: " + ", ".join(benches)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    builders = {
        "accuracy_vs_tokens.png": lambda: cost_figure(runs, style, "tokens", "tokens / problem"),
        "accuracy_vs_critical_path.png": lambda: cost_figure(runs, style, "critical_path_tokens",
                                                              "critical-path tokens / problem"),
        "accuracy_vs_wall_time.png": lambda: cost_figure(runs, style, "wall_s", "wall seconds / problem"),
        "pass_maj_at_k.png": lambda: passk_figure(runs, style),
        "saturation_fits.png": lambda: saturation_figure(runs, style),
        "rethink_rounds.png": lambda: scaling_figure(runs, style, "rounds"),
        "token_caps.png": lambda: scaling_figure(runs, style, "token_cap"),
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
    sections.append(("Accuracy per strategy and budget", [
        ("table", _accuracy_grid(runs)),
        ("note", "Budgets: N = samples of the pool, cap = a thinking-token cap (budget forcing), r = rethinking "
                 "rounds, decodes = one parallel-thinking decode per sample. Majority and best-of-N at N are means "
                 "over size-N subsets of the pool (the estimator column says which), so majority at N=1 equals "
                 "plain accuracy."),
        ("table", _answers_table(runs))]))
    figs = []
    for name, heading, caption in _FIGURES:
        if name in pngs:
            figs.append(("figure", (name, heading, caption)))
        else:
            figs.append(("note", f"{heading}: nothing to plot (no run has the data)."))
    sections.append(("Plots", figs))
    formats = _format_table(runs)
    if formats[1]:
        sections.append(("Parallel-thinking format", [("table", formats), ("note", FORMAT_NOTE),
                                                      ("note", SPEEDUP_NOTE)]))
    fits = _fits_table(runs)
    sections.append(("Saturation fits", [("table", fits), ("note", FITS_NOTE)] if fits[1]
                     else [("note", "No run has saturation fits.")]))
    front = []
    for bench, rs in benches.items():
        t = _frontier_table(rs)
        if t[1]:
            front += [("h3", bench), ("table", t)]
    sections.append(("Pareto frontier (cost: tokens)", front or [("note", "No points.")]))

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
