"""MathFusion on real engines and through the CLI, including a SIGKILL in the middle of a run.

The tiny random model cannot follow the fusion format, so on real engines nearly every job is a
parse failure: the point is that each one is recorded with its replies, counted and reported,
and that nothing is lost or sent twice. The scripted teacher behind an OpenAI-compatible
server stands in for a capable model where the test needs rows.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import get_engine
from parafuse.cli import main
from reasoning.testing.fault_server import COMPLETION_PATHS, FaultServer
from synthesis.config import MathFusionConfig
from synthesis.mathfusion.pipeline import synthesize_mathfusion
from reasoning.testing.teacher import scripted_teacher
from test_mathfusion import POOL, jsonl, write_pool
from reasoning.settings import from_dict

def check_accounting(out: Path, st: dict) -> None:
    """Every job ends as exactly one kept row, removed row or failure row."""
    kept = jsonl(out / "data" / "train.jsonl")
    removed = jsonl(out / "removed.jsonl")
    failures = jsonl(out / "failures.jsonl")
    assert len(kept) + len(removed) + len(failures) == st["jobs"]
    ids = [r["id"] for r in kept + removed + failures]
    assert len(set(ids)) == len(ids), "no job appears twice"
    assert st["kept"] == len(kept) and sum(st["failure_reasons"].values()) == len(failures)
    card = (out / "README.md").read_text()
    assert f"**{len(kept)} rows kept**" in card


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf", "vllm", "openai-vllm"])
def test_real_engine_failures_are_recorded_counted_and_resumable(tmp_path, kind):
    engine = get_engine(kind)
    cfg = from_dict(MathFusionConfig, dict(input=str(write_pool(tmp_path / "pool.jsonl")), embedder="tfidf",
                                           decontaminate=False,
                           max_tokens=48, solve_max_tokens=16, num_solutions=2, fusion_retries=1, seed=1))
    out = tmp_path / "out"
    st = synthesize_mathfusion(cfg, engine, out, progress=False, log=lambda m: None)
    assert st["jobs"] == 3 * len(POOL)
    check_accounting(out, st)
    for f in jsonl(out / "failures.jsonl"):
        assert f["reason"] != "engine_error", f["detail"]
        assert len(f["attempts"]) == 2, "the first reply and one retry, each kept"
        assert all(isinstance(a["reply"], str) and a["detail"] for a in f["attempts"])
    assert st["tokens"]["fuse_completion_tokens"] > 0
    again = synthesize_mathfusion(cfg, engine, out, progress=False, log=lambda m: None)
    assert again["requests_sent"] == 0 and again["requests_from_store"] == st["requests_sent"]


def synth_args(pool: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["synth", "mathfusion", "--input", str(pool), "--embedder", "tfidf", "--no-decontaminate",
            "--engine", "openai", "--model", "teacher", "--base-url", url, "--out", str(out), "--no-progress", *extra]


def generated_pool(path: Path, n: int) -> Path:
    """n distinct word problems in a few families, so nearest neighbours are meaningful."""
    items = ["apples", "marbles", "books", "coins", "shells", "stamps"]
    rows = [{"question": f"{name} has {3 + i} {items[i % 6]} and gets {2 * i + 1} more {items[i % 6]} from a "
                         f"friend on day {i}. How many {items[i % 6]} does {name} have now?",
             "answer": f"#### {3 + i + 2 * i + 1}"} for i, name in enumerate(f"Kid{k}" for k in range(n))]
    return write_pool(path, rows)


def test_cli_writes_datasets_and_cards_for_all_three_strategies(tmp_path, capsys):
    with FaultServer(responder=scripted_teacher) as server:
        rc = main(synth_args(generated_pool(tmp_path / "pool.jsonl", 12), tmp_path / "out", server.url,
                             "--no-check-conditional"))
    assert rc == 0, capsys.readouterr().err
    st = json.loads((tmp_path / "out" / "stats.json").read_text())
    check_accounting(tmp_path / "out", st)
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert {r["strategy"] for r in kept} == {"sequential", "parallel", "conditional"}
    assert all(r["engine"] == "openai" and r["fusion_model"] == "teacher" for r in kept)
    err = capsys.readouterr().err
    assert f"{st['jobs']} jobs" in err and "tokens" in err


def test_cli_on_the_tiny_model_reports_its_failures(tmp_path, tiny_model, capsys):
    rc = main(["synth", "mathfusion", "--input", str(write_pool(tmp_path / "pool.jsonl")), "--embedder", "tfidf",
               "--no-decontaminate", "--strategies", "sequential,conditional", "--max-tokens", "32",
               "--solve-max-tokens", "8", "--num-solutions", "2", "--fusion-retries", "0", "--engine", "hf",
               "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    st = json.loads((tmp_path / "out" / "stats.json").read_text())
    check_accounting(tmp_path / "out", st)
    if st["failure_reasons"]:
        assert "failures:" in err and "failures.jsonl" in err
    assert (tmp_path / "out" / "data" / "train.parquet").exists()


def test_yaml_recipe_supplies_settings_and_flags_override_it(tmp_path, capsys):
    pool = generated_pool(tmp_path / "pool.jsonl", 6)
    with FaultServer(responder=scripted_teacher) as server:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(f"input: {pool}\nstrategies: [parallel]\nnum_solutions: 3\nembedder: tfidf\n"
                          f"decontaminate: false\nengine: openai\nmodel: teacher\nbase_url: [{server.url}]\n"
                          f"out: {tmp_path / 'out'}\nno_progress: true\n")
        rc = main(["synth", "mathfusion", "--config", str(recipe), "--num-solutions", "2"])
        assert rc == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["strategies"] == ["parallel"] and cfg["num_solutions"] == 2
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert kept and all(r["num_solutions"] == 2 and r["strategy"] == "parallel" for r in kept)


@pytest.mark.parametrize("recipe, message", [
    ("input: x\nnum_solution: 3\n", "unknown key 'num_solution'"),
    ("input: x\nnum_solutions: three\n", "num_solutions must be int"),
    ("input: [x\n", "recipe.yaml:2: not valid YAML"),
])
def test_bad_yaml_recipe_names_the_file_and_key(tmp_path, capsys, recipe, message):
    (tmp_path / "recipe.yaml").write_text(recipe)
    rc = main(["synth", "mathfusion", "--config", str(tmp_path / "recipe.yaml"), "--model", "m", "--out",
               str(tmp_path / "out")])
    assert rc == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("lines, message", [
    ('{"question": "What is 1 + 1?", "answer": "2"}\n{"question": oops}\n', "pool.jsonl:2"),
    ('{"problem": "What is 1 + 1?", "answer": "2"}\n', "no field 'question'"),
    ("\n\n", "has no records"),
    ('{"question": "What is 1 + 1?", "answer": "2"}\n', "needs at least 2"),
])
def test_bad_seed_file_is_refused_with_file_and_line(tmp_path, capsys, lines, message):
    (tmp_path / "pool.jsonl").write_text(lines)
    rc = main(synth_args(tmp_path / "pool.jsonl", tmp_path / "out", "http://127.0.0.1:9/v1"))
    assert rc == 2
    assert message in capsys.readouterr().err


def test_unknown_strategy_and_missing_model_are_refused(tmp_path, capsys):
    pool = str(write_pool(tmp_path / "pool.jsonl"))
    assert main(["synth", "mathfusion", "--input", pool, "--strategies", "serial", "--model", "m",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown strategy serial" in capsys.readouterr().err
    assert main(["synth", "mathfusion", "--input", pool, "--out", str(tmp_path / "o")]) == 2
    assert "--model is required" in capsys.readouterr().err


# ---- kill and resume ------------------------------------------------------------------------

def cli(pool: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "parafuse.cli", *synth_args(pool, out, url, "--max-concurrency", "8")]


def store_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:  # the line a kill cut short
            pass
    return rows


def identity(row: dict) -> tuple:
    """What the server sees of a stored request: its text and seed."""
    req = row["request"]
    return "\n".join(m["content"] for m in req["messages"]), req["params"].get("seed")


def test_sigkill_mid_run_then_rerun_loses_nothing_and_resends_nothing_finished(tmp_path):
    pool = generated_pool(tmp_path / "pool.jsonl", 40)
    with FaultServer(responder=scripted_teacher, delay_s=0.02) as server:
        ref = subprocess.run(cli(pool, tmp_path / "ref", server.url), capture_output=True, text=True, timeout=300)
        assert ref.returncode == 0, ref.stderr
        total = len(store_rows(tmp_path / "ref" / "store.jsonl"))
        start = len(server.calls)
        out = tmp_path / "out"
        proc = subprocess.Popen(cli(pool, out, server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(store_rows(out / "store.jsonl")) < total // 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        time.sleep(0.3)
        finished = {identity(r) for r in store_rows(out / "store.jsonl") if r["status"] == "ok"}
        mark = len(server.calls)
        rerun = subprocess.run(cli(pool, out, server.url), capture_output=True, text=True, timeout=300)
        resent = [(c["text"], c["seed"]) for c in server.calls[mark:] if c["path"] in COMPLETION_PATHS]
        first_try = [(c["text"], c["seed"]) for c in server.calls[start:mark] if c["path"] in COMPLETION_PATHS]
    assert proc.returncode == -signal.SIGKILL and rerun.returncode == 0, rerun.stderr
    assert total // 3 <= len(finished) < total, "the kill landed mid-run"
    assert not finished & set(resent), "a request finished before the kill was sent again"
    assert len(set(first_try)) == len(first_try) and len(set(resent)) == len(resent)
    rows = store_rows(out / "store.jsonl")
    assert len({r["key"] for r in rows}) == len(rows) == total, "one row per request, none lost"
    for name in ("data/train.jsonl", "removed.jsonl", "failures.jsonl"):
        assert (out / name).read_text() == (tmp_path / "ref" / name).read_text(), name


def test_unreachable_server_stops_the_run_at_once_with_the_url(tmp_path, capsys):
    t0 = time.perf_counter()
    rc = main(synth_args(write_pool(tmp_path / "pool.jsonl"), tmp_path / "out", "http://127.0.0.1:9/v1"))
    assert rc == 2 and time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert "no OpenAI-compatible server answered at http://127.0.0.1:9/v1" in err
