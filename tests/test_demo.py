"""`parafuse demo`: the plan's commands are real `parafuse` commands, and a stopped demo resumes where it stopped.

These tests hold the stage runner to its promises without running a stage; `test_demo_learning.py` runs
the whole smoke demo and asserts that it learns.
"""
from __future__ import annotations

import json

import pytest

from parafuse.cli import build_parser
from parafuse.demo import load_config, plan, run_demo
from reasoning.types import InputError


@pytest.mark.parametrize("recipe,variant", [(None, None), (None, "smoke"), ("real", None)])
def test_every_stage_is_a_command_the_cli_accepts(recipe, variant):
    parser = build_parser()
    cfg = load_config(recipe, variant)
    stages = plan(cfg)
    names = [s.name for s in stages]
    assert names[-1] == "report" and (names[0] == "model") == (cfg.model.name == "tiny:arith")
    assert {"sft-plain", "sft-parallel_r1", "grpo-parallel_r1", "eval-untrained",
            "eval-grpo-parallel_r1"} <= set(names)
    for stage in stages:
        try:
            args = parser.parse_args(stage.command)
        except SystemExit:
            pytest.fail(f"stage {stage.name}: `parafuse {' '.join(stage.command)}` is not a valid command")
        assert callable(args.func)
    # the GRPO stage starts from the parallel SFT model; the report reads every evaluation
    grpo = next(s for s in stages if s.name == "grpo-parallel_r1").command
    assert grpo[grpo.index("--model-name") + 1] == "models/sft-parallel_r1/merged"
    # the parallel cold start begins at the sequential model (the demo) or the base model (the real recipe)
    for name in ("sft-plain", "sft-parallel_r1"):
        command = next(s for s in stages if s.name == name).command
        assert command.count("--model-name") == 1
    start = next(s for s in stages if s.name == "sft-parallel_r1").command
    assert start[start.index("--model-name") + 1] == ("models/sft-plain/merged" if recipe is None
                                                       else cfg.model.name)
    report = next(s for s in stages if s.name == "report").command
    assert [a for a in report if a.startswith("eval/")] == [s.writes for s in stages if s.name.startswith("eval-")]
    # the SFT data holds the seed problems next to their fusions (MathFusionQA's mix)
    fusion = next(s for s in stages if s.name == "synth-mathfusion").command
    assert "--include-originals" in fusion
    if recipe == "real":  # the real recipe trains under its launcher and evaluates on the benchmark
        assert all(s.launcher[:2] == ("accelerate", "launch") for s in stages if s.command[0] == "train")
        untrained = next(s for s in stages if s.name == "eval-untrained").command
        assert untrained[untrained.index("--benchmark") + 1] == "gsm8k"
        assert untrained[untrained.index("--model") + 1] == cfg.model.name


def test_a_parallel_format_without_traces_is_refused(tmp_path):
    recipe = tmp_path / "demo.yaml"
    recipe.write_text("data: {trace_formats: [parathinker]}\ntraining: {parallel_format: parallel_r1}\n")
    with pytest.raises(InputError, match="parallel_format parallel_r1 is not among data.trace_formats"):
        load_config(str(recipe), None)


def test_one_rethinking_round_is_refused_before_any_stage(tmp_path):
    recipe = tmp_path / "demo.yaml"
    recipe.write_text("eval: {rethink_rounds: 1}\n")
    with pytest.raises(InputError, match=r"demo.yaml.*eval.rethink_rounds 1 does no rethinking"):
        load_config(str(recipe), None)
    recipe.write_text("eval: {rethink_rounds: 1, strategies: [plain, majority]}\n")  # no rethink: nothing to refuse
    assert load_config(str(recipe), None).eval.rethink_rounds == 1


def test_a_stopped_demo_resumes_at_the_stage_that_failed(tmp_path, monkeypatch):
    import parafuse.demo as demo

    cfg = load_config(None, "smoke")
    ran, failing = [], {"sft-plain"}

    def fake_stage(stage, out, log_dir, runner):
        ran.append(stage.name)
        if stage.name in failing:
            raise InputError(f"demo stage {stage.name} failed")
        return 0.5

    monkeypatch.setattr(demo, "run_stage", fake_stage)
    with pytest.raises(InputError, match="sft-plain"):
        run_demo(cfg, tmp_path, echo=lambda line: None)
    state = json.loads((tmp_path / "demo.json").read_text())
    assert state["stages"]["sft-plain"]["status"] == "running"
    before = ran.index("sft-plain")
    assert all(state["stages"][name]["status"] == "done" for name in ran[:before])

    failing.clear()
    ran.clear()
    lines = []
    run_demo(cfg, tmp_path, echo=lines.append)
    assert ran[0] == "sft-plain" and ran[-1] == "report"  # the finished stages are not run again
    assert sum("skipped" in line for line in lines) == before
    readme = (tmp_path / "README.md").read_text()
    assert all(f"| {s.name} |" in readme for s in plan(cfg))  # every stage and its command, to reproduce it

    other = load_config(None, None)  # the full-size settings on the smoke run's folder
    with pytest.raises(InputError, match="other settings"):
        run_demo(other, tmp_path, echo=lambda line: None)


def test_a_forked_stage_writes_what_a_fresh_python_writes(tmp_path):
    import parafuse.demo as demo

    outputs = {}
    for runner in ("fork", "subprocess"):
        out = tmp_path / runner
        (out / "logs").mkdir(parents=True)
        stage = demo.Stage("task", "a few arith problems", ["eval", "task", "arith", "--level", "1", "--split",
                                                            "train", "--count", "4", "--solutions", "--out",
                                                            "data/seed.jsonl"], "data/seed.jsonl")
        seconds = demo.run_stage(stage, out, out / "logs", runner=runner)
        assert seconds > 0
        assert (out / "logs" / "task.log").exists()  # the stage's output lands in its log, not on the screen
        outputs[runner] = (out / "data" / "seed.jsonl").read_text()  # relative paths: run in the run folder
    assert outputs["fork"] == outputs["subprocess"] and outputs["fork"].count("\n") == 4


@pytest.mark.parametrize("runner", ["fork", "subprocess"])
def test_a_failing_stage_names_its_exit_code_and_shows_its_log(tmp_path, runner):
    import parafuse.demo as demo

    (tmp_path / "logs").mkdir()
    stage = demo.Stage("task", "a flag the command lacks",
                       ["eval", "task", "arith", "--out", "x.jsonl", "--no-such-flag"], "x")
    with pytest.raises(InputError, match=r"(?s)demo stage task failed \(exit 2\).*--no-such-flag.*rerun"):
        demo.run_stage(stage, tmp_path, tmp_path / "logs", runner=runner)


def test_a_crash_inside_a_forked_stage_is_that_stage_s_failure(tmp_path, monkeypatch):
    import parafuse.cli
    import parafuse.demo as demo

    def crash(argv):
        raise RuntimeError("the stage crashed")

    monkeypatch.setattr(parafuse.cli, "main", crash)  # the child is a fork: it runs the patched main
    (tmp_path / "logs").mkdir()
    stage = demo.Stage("task", "a crash", ["eval", "task", "arith"], "x")
    with pytest.raises(InputError, match=r"(?s)failed \(exit 1\).*RuntimeError: the stage crashed"):
        demo.run_stage(stage, tmp_path, tmp_path / "logs", runner="fork")
    assert (tmp_path / "logs").is_dir()  # this process goes on after its child's crash
    with pytest.raises(InputError, match="stage runner 'threads'"):
        run_demo(load_config(None, "smoke"), tmp_path / "other", echo=lambda line: None, runner="threads")


def test_an_interrupt_sent_to_the_demo_alone_stops_its_forked_stage(tmp_path):
    # In a fresh Python, as `parafuse demo` runs (this test process holds engines, threads and signal
    # handlers of earlier tests that a fork would inherit). The stage never sees the demo's Ctrl-C (a
    # signal sent to the demo's main thread only): after the grace period the demo passes it on.
    import subprocess
    import sys

    script = (
        "import signal, sys, threading, time; from pathlib import Path\n"
        "import parafuse.cli, parafuse.demo as demo\n"
        "def stuck(argv):\n"
        "    time.sleep(60)\n"
        "    return 0\n"
        "parafuse.cli.main = stuck\n"
        # Python's Ctrl-C handler, also where the suite was started with SIGINT ignored (a background job)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
        "demo.INTERRUPT_GRACE_S = (0.3, 5.0)\n"
        "threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()\n"
        "started = time.monotonic()\n"
        "try:\n"
        f"    demo.run_forked(['eval', 'task'], Path({str(tmp_path)!r}), Path({str(tmp_path / 'stage.log')!r}))\n"
        "except KeyboardInterrupt:\n"
        "    print(f'interrupted after {time.monotonic() - started:.1f} s')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = float(done.stdout.split("interrupted after ")[1].split()[0])
    assert seconds < 10  # the stage stopped as a Ctrl-C stops it, long before its 60 s
    assert "KeyboardInterrupt" in (tmp_path / "stage.log").read_text()


def test_a_run_recorded_before_a_setting_existed_still_resumes(tmp_path, monkeypatch):
    import parafuse.demo as demo

    monkeypatch.setattr(demo, "run_stage", lambda stage, out, log_dir, runner: 0.1)
    cfg = load_config(None, None)
    cfg.eval.decoder_samples = None  # left at its default, the plan is the one of runs made before the setting
    run_demo(cfg, tmp_path, echo=lambda line: None)
    state = json.loads((tmp_path / "demo.json").read_text())
    del state["config"]["eval"]["decoder_samples"]  # as a folder written before the setting was added
    (tmp_path / "demo.json").write_text(json.dumps(state))
    lines = []
    run_demo(cfg, tmp_path, echo=lines.append)
    assert sum("skipped" in line for line in lines) == len(plan(cfg))


def test_a_forked_stage_logs_through_the_preloaded_libraries(tmp_path):
    # A fresh Python, as `parafuse demo` is: the libraries' log handlers are made during the preload, and
    # a stage's warnings through them must land in its log.
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path\n"
        "from parafuse.demo import preload, run_forked\n"
        "preload()\n"
        "import parafuse.cli, transformers\n"
        "def stage(argv):\n"
        "    transformers.logging.get_logger('transformers.trainer').warning('a warning of the stage')\n"
        "    print('a line of the stage')\n"
        "    return 3\n"
        "parafuse.cli.main = stage\n"
        f"sys.exit(run_forked(['x'], Path({str(tmp_path)!r}), Path({str(tmp_path / 'stage.log')!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    log = (tmp_path / "stage.log").read_text()
    assert "a warning of the stage" in log and "a line of the stage" in log
    assert "a warning of the stage" not in done.stderr  # the stage's output is in its log, not the demo's
