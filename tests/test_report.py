"""eval.report: Markdown tables, PNG files, and a self-contained HTML page checked in headless Chromium."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from eval.records import Point
from eval.report import load_run, write_report
from eval.scaling import fit_saturation

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def make_run_dir(path: Path, *, label: str, model: str, benchmark: str = "gsm8k", n: int = 16,
                 n_problems: int = 60, skill: float = 0.0, tokens_per_sample: float = 300.0, seed: int = 0,
                 strategies: tuple[str, ...] = ("plain", "majority", "fusion"), with_fits: bool = True,
                 excluded: int = 2) -> Path:
    """A results.json shaped like the real one, from a simulated population of problems.

    Each problem has a per-sample success probability; ``skill`` shifts the population (logit).
    majority@N is the plurality of N samples (a wrong answer is one of three distractors; ties go
    to the answer seen first);
    fusion@N is right when any of the N samples is right and the fusor keeps it (90 %).
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.3 + skill, 1.6, n_problems)
    p_q = 1.0 / (1.0 + np.exp(-logits))
    p_q[: n_problems // 8] = 0.0  # a few unsolvable problems give the curves a ceiling
    correct = rng.random((n_problems, n)) < p_q[:, None]  # (problems, samples)
    wrong_answer = rng.integers(0, 3, (n_problems, n))
    keep = rng.random(n_problems) < 0.9
    budgets = [b for b in (1, 2, 4, 8, 16, 32) if b <= n]

    def majority(nb: int) -> np.ndarray:
        votes_right = correct[:, :nb].sum(1)
        votes_wrong = np.stack([((~correct[:, :nb]) & (wrong_answer[:, :nb] == j)).sum(1) for j in range(3)], 1)
        top_wrong = votes_wrong.max(1)
        return ((votes_right > top_wrong) | ((votes_right == top_wrong) & correct[:, 0])).astype(float)

    def fusion(nb: int) -> np.ndarray:
        return (correct[:, :nb].any(1) & keep).astype(float)

    per_strategy = {"plain": {1: correct[:, 0].astype(float)},
                    "majority": {b: majority(b) for b in budgets},
                    "fusion": {b: fusion(b) for b in budgets if b >= 2}}
    points, fits = [], {}
    for s in strategies:
        for b, acc in per_strategy[s].items():
            agg = 0.0 if s != "fusion" else 0.6 * tokens_per_sample + 40 * b
            tokens = b * tokens_per_sample + agg
            crit = tokens_per_sample * (1 + 0.08 * math.log2(b)) + agg
            points.append(Point(strategy=s, budget=b, accuracy=float(acc.mean()),
                                accuracy_se=float(acc.std(ddof=1) / math.sqrt(len(acc))), tokens=tokens,
                                critical_path_tokens=crit, wall_s=crit / 55.0 + 0.05 * b, n_problems=n_problems,
                                run=label).to_dict())
        if with_fits and len(per_strategy[s]) >= 2:
            bs = sorted(per_strategy[s])
            fits[s] = fit_saturation(bs, np.column_stack([per_strategy[s][b] for b in bs]), n_boot=50,
                                     seed=seed).to_dict()

    c = correct.sum(1)
    ks = budgets
    avg = correct.mean(1)
    results = {
        "config": {"benchmark": benchmark, "model": model, "engine": "hf", "n": n, "strategies": list(strategies),
                   "pool": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 2048, "seed": None},
                   "template": "qwen-boxed"},
        "label": label,
        "versions": {"parafuse": "0.1.0", "torch": "2.8.0", "transformers": "5.16.0"},
        "grader": {"name": "math_verify", "version": "0.8.0", "timeout_s": 5},
        "problems": {"total": n_problems + excluded, "graded": n_problems, "excluded": excluded,
                     "excluded_ids": [f"x{i}" for i in range(excluded)]},
        "metrics": {"k": ks,
                    "pass@k": [float(np.mean([_pass_at_k(n, int(ci), k) for ci in c])) for k in ks],
                    "maj@k": [float(majority(k).mean()) for k in ks],
                    "avg@k": [float(avg.mean())] * len(ks),
                    "avg@k_se": [float(avg.std(ddof=1) / math.sqrt(n_problems))] * len(ks),
                    "mean_tokens": [k * tokens_per_sample for k in ks],
                    "mean_critical_path_tokens": [tokens_per_sample * (1 + 0.08 * math.log2(k)) for k in ks]},
        "points": points,
        "fits": fits,
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(results, indent=1))
    return path


def _md_tables(md: str) -> list[list[list[str]]]:
    """Each Markdown table as rows of cells (the separator row dropped)."""
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    return tables


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    a = make_run_dir(tmp_path / "runs" / "a", label="tiny-a@gsm8k", model="org/tiny-a", seed=1, skill=-0.4,
                     tokens_per_sample=280.0)
    b = make_run_dir(tmp_path / "runs" / "b", label="tiny-b@gsm8k", model="org/tiny-b", seed=2, skill=0.6,
                     tokens_per_sample=420.0, excluded=0)
    return [a, b]


def test_markdown_tables_and_pngs(two_runs: list[Path], tmp_path: Path):
    md_path, html_path = write_report(two_runs, tmp_path / "report", title="Two tiny models")
    md = md_path.read_text()
    assert md.startswith("# Two tiny models")
    tables = _md_tables(md)
    summary = tables[0]
    header = summary[0]
    assert header[:5] == ["run", "benchmark", "model", "n", "strategies"]
    for col in ("plain acc % @max budget", "majority acc % @max budget", "fusion acc % @max budget", "pass@1 %",
                "pass@k % (max k)", "maj@k % (max k)", "excluded", "grader"):
        assert col in header
    rows = {r[0]: dict(zip(header, r)) for r in summary[1:]}
    assert set(rows) == {"tiny-a@gsm8k", "tiny-b@gsm8k"}
    for label, run_dir in zip(["tiny-a@gsm8k", "tiny-b@gsm8k"], two_runs):
        data = json.loads((run_dir / "results.json").read_text())
        row = rows[label]
        assert row["benchmark"] == "gsm8k" and row["model"] == data["config"]["model"] and row["n"] == "16"
        assert row["strategies"] == "plain, majority, fusion"
        assert row["excluded"] == str(data["problems"]["excluded"])
        assert row["grader"] == "math_verify 0.8.0"
        top = max((p for p in data["points"] if p["strategy"] == "majority"), key=lambda p: p["budget"])
        assert row["majority acc % @max budget"] == (f"{100 * top['accuracy']:.1f} ± {100 * top['accuracy_se']:.1f} "
                                                f"(N={top['budget']})")
        m = data["metrics"]
        assert row["pass@1 %"] == f"{100 * m['pass@k'][0]:.1f}"
        assert row["pass@k % (max k)"] == f"{100 * m['pass@k'][-1]:.1f} (k=16)"
        assert row["maj@k % (max k)"] == f"{100 * m['maj@k'][-1]:.1f} (k=16)"
    # the protocol table shows each run's pool sampling (eval run writes it as the nested `pool` block)
    protocol = next(t for t in tables if t[0][:2] == ["run", "engine"])
    for row in protocol[1:]:
        assert dict(zip(protocol[0], row))["temperature"] == "0.6"
        assert dict(zip(protocol[0], row))["max_tokens"] == "2048"
    # the fits table has one row per (run, strategy with >= 2 budgets)
    fits = next(t for t in tables if t[0][:3] == ["run", "benchmark", "strategy"])
    assert sorted((r[0], r[2]) for r in fits[1:]) == sorted(
        (lab, s) for lab in ("tiny-a@gsm8k", "tiny-b@gsm8k") for s in ("majority", "fusion"))
    # every PNG the Markdown embeds sits beside it and is a real PNG
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 5
    for name in images:
        data = (md_path.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # the HTML refers to nothing outside itself
    page = html_path.read_text()
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert re.findall(r'src="(?!data:)', page) == []
    assert page.count('src="data:image/png;base64,') == 5


def test_run_without_fits_or_with_one_point(tmp_path: Path):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "results.json").write_text(json.dumps({
        "config": {"benchmark": "math500", "model": "m", "n": 1, "strategies": ["plain"]},
        "points": [Point("plain", 1, 0.5, 0.05, 300.0, 300.0, 4.0, 100).to_dict()]}))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "results.json").write_text(json.dumps({"config": {"benchmark": "aime24"}, "label": "bare"}))
    nofit = make_run_dir(tmp_path / "nofit", label="nofit", model="m2", benchmark="math500", with_fits=False, n=4)
    odd = make_run_dir(tmp_path / "odd", label="a$b | <i>x</i>", model="m3", benchmark="math500", n=4, seed=5)
    md_path, html_path = write_report([lone, bare, nofit, odd], tmp_path / "out")
    md = md_path.read_text()
    assert r"a$b \| <i>x</i>" in md  # a pipe cannot break the Markdown table
    page = html_path.read_text()
    assert "a$b | &lt;i&gt;x&lt;/i&gt;" in page and "<i>x</i>" not in page
    assert "## Saturation fits" in md
    fits = next(t for t in _md_tables(md) if t[0][:3] == ["run", "benchmark", "strategy"])
    assert {r[0] for r in fits[1:]} == {r"a$b \| <i>x</i>"}  # only the run that has fits
    assert "lone" in md and "bare" in md  # label falls back to the directory name
    assert load_run(lone).label == "lone"
    summary = _md_tables(md)
    assert any(r[0] == "bare" for t in summary for r in t)
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (md_path.parent / name).stat().st_size > 0
    with pytest.raises(FileNotFoundError):
        write_report([tmp_path / "missing"], tmp_path / "out2")
    # no fits anywhere: the section says so instead of an empty table
    md = write_report([lone, nofit], tmp_path / "out3")[0].read_text()
    assert "No run has saturation fits." in md


def _render(html_path: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "warning") else None)
            page.on("requestfailed", lambda req: errors.append(f"requestfailed: {req.url}"))
            page.on("request", lambda req: requests.append(req.url))
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
            images = page.evaluate("""Array.from(document.images).map(i => ({
                complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                shown: i.getBoundingClientRect().width}))""")
            tables = page.evaluate("document.querySelectorAll('table').length")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "requests": requests, "images": images, "tables": tables}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="system Chromium not installed at /usr/bin/chromium")
def test_html_renders_in_chromium(two_runs: list[Path], tmp_path: Path):
    extra = make_run_dir(tmp_path / "runs" / "c", label="tiny-a@math500", model="org/tiny-a", benchmark="math500",
                         seed=3, skill=-1.0, tokens_per_sample=650.0)
    _, html_path = write_report(two_runs + [extra], tmp_path / "report")
    shot = tmp_path / "report.png"
    out = _render(html_path, shot)
    assert out["errors"] == []
    # the page loads itself and nothing else (data: URIs do not show up as network requests)
    assert [u for u in out["requests"] if not u.startswith(("file:", "data:"))] == []
    assert len(out["images"]) == 5
    for img in out["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0 and img["shown"] > 0, img
    assert out["tables"] >= 5  # summary per benchmark (2), protocol, fits, frontier per benchmark (2)
    assert shot.stat().st_size > 50_000


def test_report_on_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    from parafuse.cli import main

    assert main(["eval", "report", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no-such-run" in err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "report", str(tmp_path / "empty")]) == 2
    assert "has no results.json" in capsys.readouterr().err


def _with_sequential_points(run: Path) -> Path:
    """Add rethink rounds, budget-forcing caps, a decoded strategy and labelled fits (as `eval run` writes)."""
    data = json.loads((run / "results.json").read_text())

    def point(strategy, budget, axis, acc, tokens):
        return Point(strategy=strategy, budget=budget, accuracy=acc, accuracy_se=0.02, tokens=tokens,
                     critical_path_tokens=tokens, wall_s=1.0, n_problems=60, run=data["label"], axis=axis).to_dict()

    data["points"] += [point("rethink", r, "rounds", 0.3 + 0.05 * i, 300.0 * (i + 1)) for i, r in enumerate((1, 2, 4))]
    data["points"] += [point("budget", c, "token_cap", 0.2 + 0.05 * i, float(c)) for i, c in enumerate((256, 512))]
    data["points"].append(point("parallel_r1", 1, "decodes", 0.33, 500.0))
    data["config"]["strategies"] += ["rethink", "budget", "parallel_r1"]
    rounds = fit_saturation([1, 2, 4], np.array([[0.3, 0.35, 0.45]] * 10), n_boot=0).to_dict()
    data["fits"]["rethink"] = rounds | {"label": "fit to rethink accuracy at r rounds (sequential)",
                                        "kind": "sequential", "axis": "rounds", "strategy": "rethink",
                                        "curve": "rethink"}
    ks = data["metrics"]["k"]
    cover = fit_saturation(ks, np.array([data["metrics"]["pass@k"]] * 10), n_boot=0).to_dict()
    data["fits"]["pass@k"] = cover | {"label": "fit to pass@N (coverage), F_max free", "kind": "coverage",
                                      "axis": "samples", "strategy": None, "curve": "pass@k"}
    (run / "results.json").write_text(json.dumps(data))
    return run


def test_samples_rounds_and_token_caps_are_never_on_one_axis(tmp_path: Path):
    from eval.report_data import load_run
    from eval.report_plots import Style, saturation_figure, scaling_figure

    run = _with_sequential_points(make_run_dir(tmp_path / "run", label="m@gsm8k", model="m", seed=3))
    runs = [load_run(run)]
    style = Style(runs)

    def xs(fig):  # every x value of every marker series drawn on the figure's panels
        return {float(x) for ax in fig.axes for line in ax.get_lines() if line.get_marker() not in (None, "None", "")
                for x in line.get_xdata()}

    samples, rounds, caps = (saturation_figure(runs, style), scaling_figure(runs, style, "rounds"),
                             scaling_figure(runs, style, "token_cap"))
    assert samples.axes[0].get_xlabel() == "samples N (log2)"
    assert rounds.axes[0].get_xlabel() == "rethinking rounds r (log2)"
    assert caps.axes[0].get_xlabel().startswith("thinking-token cap")
    assert not {256.0, 512.0} & xs(samples) and not {256.0, 512.0} & xs(rounds)
    assert {256.0, 512.0} <= xs(caps) and xs(caps) <= {256.0, 512.0}
    assert xs(rounds) <= {1.0, 2.0, 4.0}  # the rethink points and its r*, nothing from the N axis (16)
    legend = [t.get_text() for t in samples.legends[0].get_texts()]
    assert "fit to pass@N (coverage), F_max free" in legend and "majority (parallel: N samples)" in legend
    assert "rethink (parallel: N samples)" not in legend and "rethink" not in " ".join(legend)

    md_path, _ = write_report([run], tmp_path / "report")
    md = md_path.read_text()
    for name in ("saturation_fits.png", "rethink_rounds.png", "token_caps.png", "accuracy_vs_tokens.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    tables = _md_tables(md)
    fits = next(t for t in tables if t[0][:4] == ["run", "benchmark", "strategy", "fitted to"])
    by = {row[2]: row[3] for row in fits[1:]}
    assert by["pass@N"] == "fit to pass@N (coverage), F_max free"
    assert by["majority"] == "fit to majority@N (selection)"  # an old fit without a label is a selection fit
    assert by["rethink"] == "fit to rethink accuracy at r rounds (sequential)"
    assert next(row for row in fits[1:] if row[2] == "rethink")[9] == "r = 1, 2, 4"
    summary = tables[0]
    row = dict(zip(summary[0], summary[1]))
    assert row["rethink acc % @max budget"].endswith("(r=4)") and row["budget acc % @max budget"].endswith("(cap=512)")
    assert row["majority acc % @max budget"].endswith("(N=16)")
    grid = next(t for t in tables if t[0][:2] == ["run", "strategy"] and "N=1" in t[0])
    assert grid[0][2:-1] == ["N=1", "N=2", "N=4", "N=8", "N=16", "r=1", "r=2", "r=4", "cap=256", "cap=512", "decodes"]


def test_the_frontier_plot_says_which_strategy_scales_in_parallel_and_which_in_sequence(tmp_path: Path):
    from eval.report_data import load_run
    from eval.report_plots import Style, cost_figure

    run = _with_sequential_points(make_run_dir(tmp_path / "run", label="m@gsm8k", model="m", seed=3))
    runs = [load_run(run)]
    fig = cost_figure(runs, Style(runs), "tokens", "tokens / problem")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "tokens / problem" and ax.get_ylabel() == "accuracy"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "rethink (sequential: r rounds)" in legend and "majority (parallel: N samples)" in legend
    assert "budget (sequential: token cap c)" in legend and "parallel_r1 (parallel-thinking decodes)" in legend
    labels = {t.get_text() for t in ax.texts}
    assert {"r1", "r2", "r4", "N16", "c256"} <= labels
