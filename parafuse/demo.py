"""`parafuse demo`: the toolkit's whole loop in one resumable command, from seed problems to a trained
parallel thinker and its report.

Stages, each a `parafuse` command of its own (printed, timed, and listed in the run folder's
README.md so every number can be reproduced on its own):

  1. model        the base model (the ~1M-parameter arith model built from scratch, or a Hub id)
  2. task         the seed problems (the arith task's train split, or your JSONL)
  3. synth        plain solutions and MathFusion fusions (`synth mathfusion`), parallel-thinking traces
                  in two formats (`synth traces`), all from the teacher (the symbolic arith teacher, or
                  a served model)
  4. sft          one sequential recipe on the plain solutions and fusions, one parallel-thinking recipe
                  on its traces
  5. grpo         a short GRPO stage from the parallel model with that paper's reward, rolled out
                  through its decoder (Parallel-R1: the alternating accuracy / parallel-bonus reward)
  6. eval         the untrained, SFT and GRPO models with sequential and parallel strategies (plain,
                  majority vote, the parallel decoder, Fusion-of-N, rethinking rounds)
  7. report       one report (`eval report`: accuracy against total and critical-path tokens with the
                  Pareto frontier, the saturation fit) and DIR/README.md: what each stage changed

Everything lands in one folder; `DIR/demo.json` records each finished stage, so a rerun (or one
after a kill) skips those and resumes the one that was running (every command underneath is
resumable itself). The recipe (`parafuse/recipes/demo.yaml`, its `smoke` variant for CI, or your
own YAML with a real model, `--engine vllm` and real data) sets every size.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoning.settings import build, flatten, from_dict, nested, read_recipe, setting, to_dict
from eval.rethink import check_rethink_rounds
from eval.strategies import DECODED
from reasoning.types import InputError

RECIPES_DIR = Path(__file__).parent / "recipes"
STATE = "demo.json"


# ---------------------------------------------------------------------------- settings


@dataclass
class DemoModel:
    """The model every stage starts from."""

    name: str = setting("tiny:arith", "tiny:arith (parafuse's ~1M-parameter arith model, built from scratch into "
                                      "DIR/models/base) or a model folder / Hub id")
    engine: str = setting("hf", "the engine that evaluates the models: hf (in-process) or vllm",
                          choices=("hf", "vllm"))
    engine_set: tuple[str, ...] = setting((), "extra `eval run` engine flags, e.g. --tensor-parallel-size 8",
                                          csv=False)


@dataclass
class DemoData:
    """The seed problems and the teacher that writes the training data."""

    seed: str = setting("arith", "arith (the task's train split, written to DIR/data/seed.jsonl), a seed pool "
                                 "(gsm8k-train, math-train) or a JSONL file of problems (question, answer)")
    data_dir: str | None = setting(None, "local copy of the seed pools and benchmarks (laid out like parafuse's "
                                         "data folder); without it they come from the Hub")
    solution_field: str | None = setting("solution", "a JSONL seed's worked-solution field: MathFusion writes "
                                                     "those problems next to their fusions (none: fusions only)")
    arith_level: int = setting(1, "arith: difficulty level of the seed problems and of the test set")
    arith_count: int = setting(6000, "arith: seed problems to generate")
    teacher_engine: str = setting("symbolic", "the teacher's engine: symbolic (the exact arith teacher), vllm, "
                                              "openai", choices=("symbolic", "vllm", "openai", "hf"))
    teacher_model: str = setting("arith-teacher", "the teacher model (for openai: its served name)")
    teacher_base_url: tuple[str, ...] = setting((), "openai teacher: the server URL(s), one per replica",
                                                csv=False)
    mathfusion_pairs: int | None = setting(None, "pairs MathFusion fuses (each three ways); every seed problem is "
                                                 "paired and kept with its own solution, so this sets the share "
                                                 "of fused rows (none: all pairs)")
    traces_limit: int = setting(4000, "seed problems sent to the trace teacher, per format (the format's filters "
                                      "keep a share of them)")
    trace_formats: tuple[str, ...] = setting(("parallel_r1", "parathinker"), "the parallel-thinking formats whose "
                                                                             "traces are synthesized")


@dataclass
class DemoTraining:
    """The training stages."""

    plain_recipe: str = setting("mathfusion-sft", "the sequential SFT recipe (trained on plain solutions and "
                                                  "MathFusion fusions)")
    plain_steps: int = setting(2000, "its optimizer steps")
    parallel_recipe: str = setting("parallel-r1-coldstart-seen", "the parallel-thinking SFT recipe (trained on "
                                                                 "its format's traces)")
    parallel_format: str = setting("parallel_r1", "that recipe's trace format (one of data.trace_formats)",
                                   choices=("parallel_r1", "threadweaver", "parathinker"))
    parallel_steps: int = setting(400, "its optimizer steps")
    parallel_start: str = setting("plain", "the parallel recipe's starting model: plain (the sequential SFT model: "
                                           "Parallel-R1's cold start teaches the format to a model that already "
                                           "reasons, arXiv 2509.07980 §3) or base", choices=("plain", "base"))
    variant: str | None = setting("arith", "the variant of both SFT recipes (arith: the arith model's sizes; "
                                           "none: the paper's settings)")
    learning_rate: float | None = setting(3e-3, "SFT learning rate (none: the recipe's)")
    sft_set: tuple[str, ...] = setting((), "extra `train sft` flags for both SFT stages", csv=False)
    grpo_recipe: str = setting("parallel-r1-seen", "the GRPO recipe that follows the parallel model")
    grpo_steps: int = setting(30, "GRPO optimizer steps")
    grpo_data: str | None = setting(None, "GRPO prompts (none: arith:FORMAT on an arith seed, else the recipe's "
                                          "own data)")
    grpo_set: tuple[str, ...] = setting((), "extra `train grpo` flags (the arith model's GRPO sizes live in the "
                                            "recipe)", csv=False)
    launcher: tuple[str, ...] = setting((), "the training stages' launcher, e.g. `accelerate launch "
                                            "--config_file zero3.yaml` (none: this Python)", csv=False)


@dataclass
class DemoEval:
    """The evaluation of every model."""

    benchmark: str = setting("arith", "arith (its test split at data.arith_level) or a benchmark name (gsm8k, "
                                      "math500, ...; from data.data_dir or the Hub)")
    limit: int = setting(80, "test problems")
    n: int = setting(16, "samples per problem: majority vote and Fusion-of-N at N = 1, 2, 4, ..., n")
    strategies: tuple[str, ...] = setting(("plain", "majority", "fusion", "rethink"), "the strategies of the "
                                                                                      "sequential model (the "
                                                                                      "others: plain and majority, "
                                                                                      "the parallel ones also their "
                                                                                      "decoder)")
    temperature: float = setting(1.0, "sampling temperature of the pool (1.0: the spread majority vote needs "
                                      "from a small model)")
    max_tokens: int = setting(160, "cap per sample (a Parallel-R1 arith trace is ~110 tokens)")
    rethink_rounds: int = setting(2, "rethinking rounds (rethink strategy)")
    fusion_subsets: int = setting(1, "Fusion-of-N: seeded subsets fused per problem and N (each one fusor call "
                                     "over a prompt of N earlier samples, the costliest requests of the run)")
    decoder_samples: int | None = setting(None, "decodes per problem of the parallel decoder (none: n; the decoder's "
                                                "point is their mean, each decode a few requests)")


@dataclass
class DemoConfig:
    """`parafuse demo`: every size of the demo's stages."""

    title: str = setting("parafuse demo", "the report's title")
    model: DemoModel = nested(DemoModel, "the base model")
    data: DemoData = nested(DemoData, "the seed problems and the teacher")
    training: DemoTraining = nested(DemoTraining, "the SFT and GRPO stages", prefix="")
    eval: DemoEval = nested(DemoEval, "the evaluation", prefix="eval-")


def load_config(recipe: str | None, variant: str | None) -> DemoConfig:
    """The bundled demo recipe (or a YAML file: a path, or a bundled name such as `real`) with a variant
    (smoke) merged in."""
    path = Path(recipe) if recipe else RECIPES_DIR / "demo.yaml"
    if recipe and not path.is_file() and (RECIPES_DIR / f"{recipe}.yaml").is_file():
        path = RECIPES_DIR / f"{recipe}.yaml"
    if not path.is_file():
        bundled = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise InputError(f"--recipe {recipe}: no such file (bundled demo recipes: {bundled})")
    data, where = read_recipe(path, variant)
    found, _ = flatten(data, DemoConfig, where)
    cfg = build(DemoConfig, found)
    if cfg.training.parallel_format not in cfg.data.trace_formats:
        raise InputError(f"{where}: training.parallel_format {cfg.training.parallel_format} is not among "
                         f"data.trace_formats ({', '.join(cfg.data.trace_formats)}): its traces would not exist")
    if "rethink" in cfg.eval.strategies:  # refused before any stage runs, not at the evaluation after training
        check_rethink_rounds(cfg.eval.rethink_rounds, f"{where}: eval.rethink_rounds")
    return cfg


# ---------------------------------------------------------------------------- the stages


@dataclass
class Stage:
    name: str
    what: str  # one line: what the stage does
    command: list[str]  # the parafuse command (without `parafuse`)
    writes: str  # the folder or file it writes, relative to DIR
    launcher: tuple[str, ...] = ()  # runs `LAUNCHER -m parafuse COMMAND` instead of this Python's


def plan(cfg: DemoConfig) -> list[Stage]:
    """Every stage of the demo, in order, as `parafuse` commands relative to the run folder."""
    d, t, e = cfg.data, cfg.training, cfg.eval
    stages: list[Stage] = []
    arith = d.seed == "arith"
    base = "models/base" if cfg.model.name == "tiny:arith" else cfg.model.name
    data_dir = ["--data-dir", d.data_dir] if d.data_dir else []
    if cfg.model.name == "tiny:arith":
        stages.append(Stage("model", "build the ~1M-parameter arith model (random weights)",
                            ["model", "tiny", "models/base", "--preset", "arith"], "models/base"))

    # 1. the seed problems and the teacher's data
    seed = "data/seed.jsonl" if arith else d.seed
    if arith:
        stages.append(Stage("task", f"write {d.arith_count} arith level-{d.arith_level} training problems with "
                                    "their worked solutions",
                            ["eval", "task", "arith", "--level", str(d.arith_level), "--split", "train", "--count",
                             str(d.arith_count), "--solutions", "--out", "data/seed.jsonl"], "data/seed.jsonl"))
    teacher = ["--engine", d.teacher_engine, "--model", d.teacher_model]
    if d.teacher_base_url:
        teacher += ["--base-url", *d.teacher_base_url]
    # MathFusionQA trains on the seed problems next to their fusions (arXiv 2503.16212 §3.3)
    originals = ["--include-originals"] + (["--solution-field", d.solution_field] if d.solution_field else [])
    stages.append(Stage("synth-mathfusion", "MathFusion: pair similar seed problems, fuse each pair three ways "
                                            "(sequential, parallel, conditional), solve and filter; the seed "
                                            "problems kept with their own solutions",
                        ["synth", "mathfusion", "--input", seed, *data_dir,
                         *(["--max-pairs", str(d.mathfusion_pairs)] if d.mathfusion_pairs else []),
                         *originals, *teacher, "--embedder", "tfidf", "--no-decontaminate", "--out",
                         "data/mathfusion", "--no-progress"], "data/mathfusion"))
    for fmt in d.trace_formats:
        stages.append(Stage(f"synth-traces-{fmt}", f"{fmt} traces from the teacher, kept by the format's filters",
                            ["synth", "traces", "--method", fmt, "--input", seed, *data_dir, "--limit",
                             str(d.traces_limit), *teacher, "--out", f"data/traces-{fmt}", "--no-progress"],
                            f"data/traces-{fmt}"))

    # 2. SFT: one sequential model, one parallel thinker, then GRPO from the parallel one
    variant = ["--variant", t.variant] if t.variant else []
    sft = [*(["--learning-rate", str(t.learning_rate)] if t.learning_rate else []),
           "--save-steps", "200", "--logging-steps", "50", *t.sft_set, "--resume"]
    stages.append(Stage("sft-plain", f"{t.plain_recipe}: SFT on the seed solutions and their fusions",
                        ["train", "sft", t.plain_recipe, *variant, "--data-source", "data/mathfusion",
                         "--data-arith-template", "math/question", "--output-dir", "models/sft-plain",
                         "--max-steps", str(t.plain_steps), "--model-name", base, *sft], "models/sft-plain",
                        t.launcher))
    parallel = f"sft-{t.parallel_format}"
    start = "models/sft-plain/merged" if t.parallel_start == "plain" else base
    stages.append(Stage(parallel, f"{t.parallel_recipe}: SFT on the {t.parallel_format} traces, from "
                                  f"{'the sequential model' if t.parallel_start == 'plain' else 'the base model'}",
                        ["train", "sft", t.parallel_recipe, *variant, "--data-source",
                         f"data/traces-{t.parallel_format}", "--output-dir", f"models/{parallel}",
                         "--max-steps", str(t.parallel_steps), "--model-name", start, *sft],
                        f"models/{parallel}", t.launcher))
    grpo = f"grpo-{t.parallel_format}"
    prompts = t.grpo_data or (f"arith:{t.parallel_format}" if arith else None)
    data = (["--data-source", prompts] if prompts else []) + (
        ["--data-arith-level", str(d.arith_level), "--data-arith-template", "math/question"] if arith else [])
    stages.append(Stage(grpo, f"{t.grpo_recipe}: GRPO from the {t.parallel_format} model, rollouts through its "
                              "decoder, the paper's reward",
                        ["train", "grpo", t.grpo_recipe, *variant, "--model-name", f"models/{parallel}/merged", *data,
                         "--output-dir", f"models/{grpo}", "--max-steps", str(t.grpo_steps), *t.grpo_set,
                         "--resume"], f"models/{grpo}", t.launcher))

    # 3. every model under the same pool settings, then one report
    models = [("untrained", base), ("sft-plain", "models/sft-plain/merged"),
              (parallel, f"models/{parallel}/merged"), (grpo, f"models/{grpo}/merged")]
    benchmark = (["--benchmark", "arith", "--level", str(d.arith_level)] if e.benchmark == "arith"
                 else ["--benchmark", e.benchmark, *data_dir])
    for label, model in models:
        # Fusion-of-N and rethinking read long prompts of earlier samples: run them where they mean something
        # (the sequential model), plain and majority everywhere, the parallel decoder on the parallel models.
        if label == "sft-plain":
            strategies = list(e.strategies)
        else:
            strategies = ["plain", "majority"] + ([t.parallel_format] if label != "untrained" else [])
        # the fusor is the model itself here: its answer gets the samples' own token cap
        extra = (["--fusion-subsets", str(e.fusion_subsets), "--fusor-max-tokens", str(e.max_tokens)]
                 if "fusion" in strategies else [])
        if e.decoder_samples and any(s in DECODED for s in strategies):
            extra += ["--decoder-samples", str(e.decoder_samples)]
        stages.append(Stage(f"eval-{label}", f"evaluate {label}: {', '.join(strategies)}",
                            ["eval", "run", *benchmark, "--limit", str(e.limit), "--engine", cfg.model.engine,
                             *cfg.model.engine_set, "--model", model, "-n", str(e.n), "--temperature",
                             str(e.temperature), "--max-tokens", str(e.max_tokens), "--strategy",
                             ",".join(strategies), "--template", "math/question", "--decoder-template", "run",
                             "--rethink-rounds", str(e.rethink_rounds), *extra, "--label", label,
                             "--out", f"eval/{label}", "--no-progress"], f"eval/{label}"))
    stages.append(Stage("report", "one report over every model: frontiers, saturation fit, tables",
                        ["eval", "report", *[f"eval/{label}" for label, _ in models], "--out", "report",
                         "--title", cfg.title], "report"))
    return stages


# ---------------------------------------------------------------------------- running


def read_state(out: Path) -> dict[str, Any]:
    path = out / STATE
    return json.loads(path.read_text()) if path.exists() else {"stages": {}}


def recorded_config(recorded: dict[str, Any], out: Path) -> dict[str, Any] | None:
    """A run's recorded settings with the fields added since filled in by their defaults (None when they
    no longer parse), so a run from before a new setting still resumes."""
    try:
        return to_dict(from_dict(DemoConfig, recorded, str(out / STATE)))
    except InputError:
        return None


def write_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(out / STATE)


# What every stage's process imports: a forked stage finds them loaded (about 10 s each on a 2-core CPU, paid
# once instead of at every stage). Importing them runs no torch kernel, so the demo's own process never starts
# the OpenMP thread pool a forked child could not use.
PRELOAD = ("torch", "transformers", "peft", "datasets", "trl", "rl.sft", "rl.grpo", "eval.run",
           "reasoning.engines", "synthesis.mathfusion", "synthesis.traces")
# TRL reads this when imported, so it is set before the preload too
STAGE_ENV = {"TRL_EXPERIMENTAL_SILENCE": "1"}
RUNNERS = ("fork", "subprocess")
# After Ctrl-C: how long a stage may take to save and stop, then how long after being told again
INTERRUPT_GRACE_S = (30.0, 10.0)


def preload() -> None:
    """Import what the stages import, so each forked stage starts with it loaded. Only a speed-up: a
    module that fails to load here is loaded (and fails, in its log) by the stage that needs it."""
    import importlib
    import warnings

    os.environ.update(STAGE_ENV)
    # The import-time chatter (version checks, backends) is silenced at the descriptors, so the libraries'
    # log handlers, made now, keep the real sys.stderr: a forked stage's messages reach its log.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in PRELOAD:
                try:
                    importlib.import_module(name)
                except Exception:  # an optional part this install lacks, a broken backend
                    pass
            for module, names in (("transformers", ("AutoModelForCausalLM", "AutoTokenizer", "Trainer")),
                                  ("trl", ("SFTTrainer", "GRPOTrainer"))):
                loaded = sys.modules.get(module)
                for name in names:  # both packages load their classes on first access
                    try:
                        getattr(loaded, name, None)
                    except Exception:
                        pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _stage_child(command: list[str], cwd: Path, log: Path) -> None:
    """The forked child: run `parafuse COMMAND` with its output in `log`, then exit; never returns."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # Python's own streams write to the log too, whatever object the parent had put in their place
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
        os.chdir(cwd)
        sys.argv = ["parafuse", *command]
        from parafuse.cli import main

        code = main(command)
        code = 0 if code is None else code  # as `sys.exit(main())` would exit
    except SystemExit as stop:  # argparse's usage errors, sys.exit inside a command
        if isinstance(stop.code, int) or stop.code is None:
            code = stop.code or 0
        else:  # sys.exit("message"): what the interpreter would print
            print(stop.code, file=sys.stderr)
    except BaseException:  # what a subprocess would print before dying, into the stage's log
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def _reaped(pid: int, seconds: float) -> bool:
    """Whether child `pid` exits (and is reaped) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return True
        time.sleep(0.1)
    return False


def run_forked(command: list[str], cwd: Path, log: Path) -> int:
    """`parafuse COMMAND` in a forked child of this process (its imports already loaded), output to `log`.

    The child is its own process as a subprocess would be (its memory, its crash, its exit code): only the
    interpreter start and the imports are shared."""
    import signal

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _stage_child(command, cwd, log)
    try:
        _, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the child too and it is saving; a signal sent to the demo alone did
        # not: after a grace period it is passed on, and a stage that still runs after that is killed.
        for grace, then in zip(INTERRUPT_GRACE_S, (signal.SIGINT, signal.SIGKILL)):
            try:
                if _reaped(pid, grace):
                    break
            except KeyboardInterrupt:  # asked again: stop waiting
                pass
            os.kill(pid, then)
        else:
            os.waitpid(pid, 0)
        raise
    return os.waitstatus_to_exitcode(status)


def run_stage(stage: Stage, out: Path, log_dir: Path, runner: str = "subprocess") -> float:
    """Run one stage's command in the run folder; its output goes to logs/NAME.log. Returns its seconds.

    runner: fork (a child of this process, which has preloaded the imports) or subprocess (a new Python);
    a stage with a launcher always runs under it."""
    # The stages run one at a time, so each keeps every core (OMP_NUM_THREADS as the caller set it): on a
    # 2-core CPU two threads train the arith model 1.7x faster than one (measured, README "The demo").
    log = log_dir / f"{stage.name}.log"
    started = time.perf_counter()
    if runner == "fork" and not stage.launcher:
        code = run_forked(stage.command, out, log)
    else:
        with log.open("w") as f:
            launcher = list(stage.launcher) if stage.launcher else [sys.executable]
            code = subprocess.run([*launcher, "-m", "parafuse", *stage.command], cwd=out, stdout=f,
                                  stderr=subprocess.STDOUT, env={**os.environ, **STAGE_ENV}).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:]) if log.exists() else "(no log written)\n"
        raise InputError(f"demo stage {stage.name} failed (exit {code}) after {seconds:.0f} s; its log: {log}\n"
                         f"{tail}\nfix the cause and rerun the same command: finished stages are kept")
    return seconds


def run_demo(cfg: DemoConfig, out: Path, echo=print, runner: str = "subprocess") -> dict[str, Any]:
    """Run (or resume) every stage, then write DIR/README.md; returns the state (demo.json).

    runner: how the stages run (see `run_stage`). fork needs a process that has not run a torch kernel yet
    (the OpenMP pool does not survive a fork), such as the `parafuse demo` command's own: it is the CLI's
    default where the OS forks, a fresh Python per stage is this function's."""
    if runner == "fork" and not hasattr(os, "fork"):
        runner = "subprocess"
    if runner not in RUNNERS:
        raise InputError(f"stage runner {runner!r}: choose one of {', '.join(RUNNERS)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    stages = plan(cfg)
    state = read_state(out)
    if state.get("config") is not None and recorded_config(state["config"], out) != to_dict(cfg):
        raise InputError(f"{out} holds a demo run with other settings ({out / STATE}); rerun with the same "
                         "recipe and variant, or choose another --out")
    state["config"] = to_dict(cfg)
    total = time.perf_counter()
    if runner == "fork" and any(state["stages"].get(s.name, {}).get("status") != "done"
                                for s in stages if not s.launcher):
        started = time.perf_counter()
        preload()
        echo(f"loaded torch, transformers and TRL once for the stages ({time.perf_counter() - started:.0f} s)")
    for i, stage in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {stage.name}"
        done = state["stages"].get(stage.name, {})
        if done.get("status") == "done":
            echo(f"{head}: done before ({done['seconds']:.0f} s), skipped -> {out / stage.writes}")
            continue
        echo(f"{head}: {stage.what}")
        echo("    parafuse " + shlex.join(stage.command))
        state["stages"][stage.name] = {"status": "running", "command": stage.command}
        write_state(out, state)
        seconds = run_stage(stage, out, out / "logs", runner=runner)
        state["stages"][stage.name] = {"status": "done", "command": stage.command, "seconds": round(seconds, 1),
                                       "writes": stage.writes}
        write_state(out, state)
        echo(f"    took {seconds:.0f} s -> {out / stage.writes}")
    from parafuse.demo_summary import write_summary

    summary = write_summary(out, cfg, stages, state)
    state["summary"] = summary
    write_state(out, state)
    echo(f"demo finished in {time.perf_counter() - total:.0f} s (this run); report: {out / 'report'}, "
         f"summary: {out / 'README.md'}")
    return state


__all__ = ["DemoConfig", "Stage", "load_config", "plan", "run_demo"]
