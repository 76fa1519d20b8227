"""Issue 17's CLI polish: unknown recipe keys listed once with a suggestion, `reason decode`'s cap flags
the same for every method (and doing what their help says), the Grader from stdin, and no library
noise (nanobind's exit leak dump, library progress bars under --no-progress) on a real run's stderr."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reasoning.jsonl import read_jsonl
from reasoning.settings import config_from_args
from reasoning.types import InputError

ROOT = Path(__file__).resolve().parent.parent


# ---- 1. the unknown-key message ----------------------------------------------------------------------

def _mathfusion_error(tmp_path, text: str) -> str:
    from parafuse.cli import build_parser
    from synthesis.config import MathFusionConfig

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    args = build_parser().parse_args(["synth", "mathfusion", "--config", str(recipe)])
    with pytest.raises(InputError) as e:
        config_from_args(MathFusionConfig, args, args.parser)
    return str(e.value)


def test_an_unknown_key_lists_each_setting_once_and_suggests_the_closest(tmp_path):
    message = _mathfusion_error(tmp_path, "modl: x\n")
    assert "unknown key 'modl'; did you mean 'model'?" in message
    listed = message.split("Valid keys: ", 1)[1].split(", ")
    assert len(listed) == len(set(listed)), "each key once"
    assert listed == sorted(listed)
    assert {"model", "fuse", "solve", "num_solutions", "out"} <= set(listed)
    # a block's flat aliases and prefixed spellings are accepted, but the block is listed once, by its name
    assert not {"temperature", "max_tokens", "fuse_temperature", "solve_max_tokens"} & set(listed)


def test_the_suggestion_knows_aliases_and_blocks_and_is_left_out_when_nothing_is_close(tmp_path):
    assert "did you mean 'fuse_temperature'?" in _mathfusion_error(tmp_path, "fuse_temprature: 1\n")
    block = _mathfusion_error(tmp_path, "fuse: {temprature: 1}\n")
    assert "unknown key 'fuse.temprature'; did you mean 'temperature'? Valid keys of this block: " \
           "max_tokens, seed, temperature, top_p" in block
    assert "did you mean" not in _mathfusion_error(tmp_path, "zzzzzz: 1\n")


# ---- 2. `reason decode`'s cap flags --------------------------------------------------------------------

def _decode(tmp_path, method: str, *flags: str, recipe: str | None = None, capsys=None):
    """(rc, row, stderr) of `reason decode` on the scripted model that never stops by itself."""
    from parafuse.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "one two"}\n')
    out = tmp_path / f"{method}-{len(list(tmp_path.iterdir()))}.jsonl"
    args = ["reason", "decode", "--method", method, "--engine", "scripted", "--model", "tests.policies:long_reply",
            "--input", str(inp), "--out", str(out), "--no-progress", *flags]
    if recipe is not None:
        (tmp_path / "decode.yaml").write_text(recipe)
        args += ["--config", str(tmp_path / "decode.yaml")]
    rc = main(args)
    err = capsys.readouterr().err if capsys else ""
    return rc, (read_jsonl(out)[0] if rc == 0 else None), err


def _caps(row) -> list[tuple[str, int]]:
    return [(u["role"], u["completion_tokens"]) for u in row["usage"]]


def test_max_tokens_caps_the_main_requests_and_the_branch_flag_each_branch_for_every_method(tmp_path, capsys):
    # Parallel-R1: paths 3, summary 4, then the main request after the block: 5
    rc, row, err = _decode(tmp_path, "parallel_r1", "--force-open", "--max-tokens", "5", "--max-path-tokens", "3",
                           "--max-summary-tokens", "4", capsys=capsys)
    assert rc == 0, err
    assert _caps(row) == [("path", 3), ("path", 3), ("summary", 4), ("main", 5)]
    # ThreadWeaver: threads 3 (--max-path-tokens works for it too), the continuation after the join 5
    rc, row, err = _decode(tmp_path, "threadweaver", "--force-open", "--no-stop-on-truncated-thread",
                           "--max-tokens", "5", "--max-path-tokens", "3", capsys=capsys)
    assert rc == 0, err
    assert _caps(row) == [("thread", 3), ("thread", 3), ("join", 5)] and row["config"]["max_thread_tokens"] == 3
    # ParaThinker: no main request; the branch cap, either spelling, caps each path, the summary its own
    rc, row, err = _decode(tmp_path, "parathinker", "--num-paths", "2", "--max-tokens", "5", "--max-thread-tokens",
                           "3", "--max-summary-tokens", "4", capsys=capsys)
    assert rc == 0, err
    assert _caps(row) == [("path", 3), ("path", 3), ("summary", 4)] and row["config"]["max_path_tokens"] == 3
    # ... and without one, --max-tokens caps each path, as its help says
    rc, row, err = _decode(tmp_path, "parathinker", "--num-paths", "2", "--max-tokens", "5",
                           "--max-summary-tokens", "4", capsys=capsys)
    assert rc == 0, err
    assert _caps(row) == [("path", 5), ("path", 5), ("summary", 4)]
    # Parallel-R1 takes --max-thread-tokens as its path cap
    rc, row, err = _decode(tmp_path, "parallel_r1", "--force-open", "--max-thread-tokens", "2",
                           "--max-blocks", "1", capsys=capsys)
    assert rc == 0, err
    assert [n for role, n in _caps(row) if role == "path"] == [2, 2] and row["config"]["max_path_tokens"] == 2


@pytest.mark.parametrize("method", ["parallel_r1", "threadweaver"])
def test_max_total_tokens_cuts_the_main_request_where_a_method_has_one(tmp_path, capsys, method):
    rc, row, err = _decode(tmp_path, method, "--max-tokens", "50", "--max-total-tokens", "7", capsys=capsys)
    assert rc == 0, err
    assert _caps(row) == [("main", 7)] and row["total_tokens"] == 7


@pytest.mark.parametrize("method, flags, message", [
    ("threadweaver", ["--max-summary-tokens", "7"], "--max-summary-tokens does not apply to --method threadweaver: "
                                                    "ThreadWeaver has no summary request"),
    ("parathinker", ["--force-open"], "--force-open does not apply to --method parathinker: ParaThinker's paths "
                                      "always open at the prompt"),
    ("parathinker", ["--max-blocks", "2"], "--max-blocks does not apply to --method parathinker (a setting of "
                                           "parallel_r1)"),
    ("threadweaver", ["--max-path-tokens", "3", "--max-thread-tokens", "4"],
     "--max-path-tokens and --max-thread-tokens are the same setting"),
])
def test_a_cap_a_method_has_no_request_for_is_refused_saying_why(tmp_path, capsys, method, flags, message):
    rc, _, err = _decode(tmp_path, method, *flags, capsys=capsys)
    assert rc == 2 and message in err


def test_recipes_map_the_branch_cap_and_refuse_what_does_not_apply(tmp_path, capsys):
    rc, row, err = _decode(tmp_path, "threadweaver", "--force-open", recipe="max_path_tokens: 3\n", capsys=capsys)
    assert rc == 0, err
    assert row["config"]["max_thread_tokens"] == 3 and _caps(row) == [("thread", 3), ("thread", 3)]
    rc, row, err = _decode(tmp_path, "parathinker", "--num-paths", "2", recipe="max_total_tokens: 9\n", capsys=capsys)
    assert rc == 0 and row["total_tokens"] <= 9, "ParaThinker caps all its tokens with it"
    rc, _, err = _decode(tmp_path, "parathinker", recipe="max_total_tokens: null\n", capsys=capsys)
    assert rc == 0, "its default (no cap) is no contradiction"


def test_the_help_says_what_each_cap_caps_for_every_method():
    from parafuse.cli import build_parser

    parser = build_parser()
    decode = parser._subparsers._group_actions[0].choices["reason"]._subparsers._group_actions[0].choices["decode"]
    helps = {a.option_strings[0]: a.help for a in decode._actions if a.option_strings}
    assert "cap on each main request" in helps["--max-tokens"]
    assert "ParaThinker has no main request: there it caps each path" in helps["--max-tokens"]
    for flag in ("--max-path-tokens", "--max-thread-tokens"):
        assert "only]" not in helps[flag], "every method takes it"
        assert "parallel_r1 1024, threadweaver 1024, parathinker None" in helps[flag]
    assert "ParaThinker: a cap on all its tokens" in helps["--max-total-tokens"]
    assert "ThreadWeaver refuses it" in helps["--max-summary-tokens"]


# ---- 3. the Grader from stdin ---------------------------------------------------------------------------

GRADE_SCRIPT = """
import sys
{setup}
from eval.grading import grade_pairs
pairs = [("3/4", "so we get $\\\\frac{{3}}{{4}}$"), ("x^2+1", "\\\\boxed{{1+x^2}}"), ("7", "\\\\boxed{{8}}"),
         ("\\\\sqrt{{2}}", "the answer is $\\\\frac{{2}}{{\\\\sqrt{{2}}}}$")]
print([g.correct for g in grade_pairs(pairs, grader_timeout=30)])
"""
SPAWN = """
import multiprocessing
import eval.grading.pool as pool
pool._context = lambda: multiprocessing.get_context("spawn")
"""


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_the_grader_works_from_a_script_on_stdin(start):
    """`python -` has no main file: spawn and forkserver workers used to die re-importing "<stdin>"."""
    script = GRADE_SCRIPT.format(setup=SPAWN if start == "spawn" else "")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[True, True, False, True]"
    assert time.monotonic() - t0 < 150


def test_a_script_without_a_main_guard_is_not_rerun_by_the_grader(tmp_path):
    """Workers never import the parent's __main__: an unguarded script runs once."""
    script = tmp_path / "grade.py"
    script.write_text(GRADE_SCRIPT.format(setup="") + "print('ran', file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("ran") == 1 and run.stdout.strip().endswith("[True, True, False, True]")


def test_the_main_module_is_left_as_it_was():
    import eval.grading.pool as pool

    main = sys.modules["__main__"]
    before = (getattr(main, "__file__", None), getattr(main, "__spec__", None))
    with pool._main_hidden():
        assert getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None
    assert (getattr(main, "__file__", None), getattr(main, "__spec__", None)) == before


# ---- 4. no library noise on a real run's stderr --------------------------------------------------------

NOISE = ("leaked", "nanobind", "it/s]", "ba/s]", "Loading weights", "Creating parquet", "Writing model shards")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)  # the test is that the run itself switches them off
    return subprocess.run([sys.executable, "-m", "parafuse.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_a_synth_run_on_the_hf_engine_has_no_leak_dump_and_no_library_bars_under_no_progress(tmp_path, tiny_model):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"question": f"What is {a} + {a}?", "answer": str(2 * a)}) + "\n"
                             for a in (1, 2)))
    run = _cli("synth", "fusion", "--input", str(seeds), "--teacher", f"hf:{tiny_model}", "--engine", "hf",
               "--model", str(tiny_model), "--out", str(tmp_path / "fusion"), "--teacher-max-tokens", "4",
               "--fusor-max-tokens", "4", "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "fusion" / "data" / "train.parquet").exists()
    noise = [line for line in run.stderr.replace("\r", "\n").splitlines() if any(n in line for n in NOISE)]
    assert not noise, "\n".join(noise[:10])
    assert "2 prompts: 2 rows" in run.stderr, "our own summary stays"


def test_a_frozen_heap_is_freed_at_exit():
    """The cause of the dump: gc.freeze() keeps triton's nanobind objects alive past the interpreter."""
    script = textwrap.dedent("""
        import torch._dynamo  # imports triton, whose bindings are nanobind's
        from reasoning import quiet
        quiet.freeze_gc()
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "leaked" not in run.stderr


def test_no_progress_switches_the_libraries_bars_off_and_leaves_them_on_otherwise():
    from reasoning import quiet

    code = ("import sys; from reasoning import quiet; quiet.for_run(progress=sys.argv[1] == 'on'); "
            "import datasets, huggingface_hub.utils as h; from transformers.utils import logging as t; "
            "print(datasets.utils.are_progress_bars_disabled(), t.is_progress_bar_enabled(), "
            "h.are_progress_bars_disabled())")
    env = {k: v for k, v in os.environ.items() if k not in quiet.PROGRESS_ENV}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    outs = {flag: subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, env=env,
                                 timeout=300).stdout.split() for flag in ("on", "off")}
    assert outs == {"on": ["False", "True", "False"], "off": ["True", "False", "True"]}


def test_no_progress_also_reaches_libraries_imported_before_the_run():
    code = ("import datasets, huggingface_hub.utils as h; from transformers.utils import logging as t; "
            "from reasoning import quiet; quiet.for_run(progress=False); "
            "print(datasets.utils.are_progress_bars_disabled(), t.is_progress_bar_enabled(), "
            "h.are_progress_bars_disabled())")
    from reasoning import quiet

    env = {k: v for k, v in os.environ.items() if k not in quiet.PROGRESS_ENV}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.stdout.split() == ["True", "False", "True"], run.stderr[-2000:]


def test_the_settings_layer_applies_no_progress(monkeypatch):
    """Every command builds its settings with config_from_args before it loads an engine: --no-progress
    reaches the libraries there."""
    import dataclasses

    from reasoning import quiet

    calls = []
    monkeypatch.setattr(quiet, "for_run", lambda progress=True: calls.append(progress))
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-progress", action="store_true")
    cfg = dataclasses.make_dataclass("Cfg", [])
    config_from_args(cfg, parser.parse_args([]), parser)
    config_from_args(cfg, parser.parse_args(["--no-progress"]), parser)
    assert calls == [True, False]


def test_vllm_warnings_about_our_deliberate_settings_are_dropped_and_no_others():
    code = textwrap.dedent("""
        import logging
        import vllm.engine.arg_utils  # noqa: F401 - the logger that warns, with vLLM's handler set up
        from reasoning import quiet
        def filters():
            return len(logging.getLogger("vllm.engine.arg_utils").filters)
        quiet.vllm_expected_warnings()
        once = filters()
        quiet.vllm_expected_warnings()  # twice: still one filter
        log = logging.getLogger("vllm.engine.arg_utils")
        log.warning("This model does not officially support disabling chunked prefill. Disabling this manually ...")
        log.warning("a real warning stays")
        print(once == filters() and once > 0)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    both = run.stdout + run.stderr
    assert "a real warning stays" in both and "chunked prefill" not in both
    assert run.stdout.strip().splitlines()[-1] == "True"
