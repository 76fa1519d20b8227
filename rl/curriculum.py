"""Training curricula: SFT and GRPO stages chained, each starting from the last stage's weights.

    run_curriculum(load_curriculum("parallel-r1-curriculum", "smoke"))
    # or: parafuse train curriculum parallel-r1-curriculum --variant smoke [--resume] [--until NAME]

Parallel-R1 (arXiv 2509.07980, §3) trains in stages: a cold-start SFT on Parallel-GSM8K that
teaches the format, RL on GSM8K with a reward that asks for parallel blocks, then RL on the harder
DAPO-Math set. ThreadWeaver (arXiv 2512.07843) runs SFT, then P-GRPO. A curriculum recipe
names those stages; each one is an ordinary `train sft` / `train grpo` recipe, resolved exactly as
those commands resolve it, with three settings the curriculum decides:

    output_dir    OUTPUT/<i>-<name>/ (i from 1)
    model.name    stage 1: the curriculum's `model` (else its recipe's); stage i > 1: OUTPUT/<i-1>-<prev>/merged
    save_merged   on for every stage but the last (the next stage loads merged/)

A curriculum recipe (YAML):

    description: "one line for `parafuse train recipes`"
    output_dir: runs/my-curriculum
    model: Qwen/Qwen3-4B-Base                 # optional: what stage 1 starts from
    stages:
      - {name: coldstart, kind: sft, recipe: parallel-r1-coldstart-seen}
      - name: rl-easy
        kind: grpo
        recipe: arith-grpo                    # a bundled recipe's name or a YAML path
        variant: null                         # optional: a variant of that recipe
        set: {data: {arith_level: 1}}         # optional: that recipe's keys, merged over it
    variants:
      smoke:                                  # merged over the whole curriculum, as in other recipes;
        output_dir: runs/smoke/my-curriculum  # `stages:` here maps a stage's name to what changes in it
        model: tiny
        stages: {coldstart: {variant: smoke}, rl-easy: {variant: smoke, set: {training: {max_steps: 3}}}}

OUTPUT/curriculum.json records each stage's status (pending, running, done), the model it started
from, its folder, its seconds and its run summary. `--resume` skips the stages that are done and
continues the first unfinished one from its last checkpoint (`train sft|grpo --resume`); a run
without `--resume` refuses a folder that already holds a curriculum.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoning.settings import build, flatten, read_yaml, setting, to_dict
from reasoning.types import InputError

STATE_FILE = "curriculum.json"
KINDS = ("sft", "grpo")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CurriculumSettings:
    """The top level of a curriculum recipe (besides `stages:` and `variants:`)."""

    description: str = setting("", "one line shown by `parafuse train recipes`")
    output_dir: str = setting("", "the curriculum's folder: stage i writes OUTPUT/<i>-<name>/, and "
                                  "OUTPUT/curriculum.json records how far it got")
    model: str | None = setting(None, "the model stage 1 starts from (its model.name; `tiny` for a smoke run); "
                                      "none: stage 1's recipe's own model.name")


@dataclass
class StageSettings:
    """One stage of a curriculum: an SFT or GRPO recipe, optionally a variant of it and overrides."""

    name: str = setting("", "the stage's name (letters, digits, . _ -; unique): its folder is OUTPUT/<i>-<name>/")
    kind: str = setting("", "sft (`parafuse train sft`) or grpo (`parafuse train grpo`)", choices=KINDS)
    recipe: str = setting("", "a bundled recipe's name (`parafuse train recipes`) or a YAML file (a relative path "
                              "is looked up beside the curriculum file first)")
    variant: str | None = setting(None, "a variant of that recipe to merge in (smoke, arith, ...)")
    set: dict[str, Any] | None = setting(None, "overrides merged over that recipe (after its variant): the same "
                                               "keys as the recipe, nested (e.g. {data: {arith_level: 3}}); not "
                                               "output_dir, nor model.name after stage 1 (the curriculum sets them)")


@dataclass
class Stage:
    """A resolved stage: its recipe object is what `train sft|grpo` would build, chaining settings applied."""

    index: int  # 1-based
    name: str
    kind: str
    where: str  # the recipe file (and variant), for messages
    recipe: Any  # SFTRecipe | GRPORecipe
    output_dir: Path
    start_model: str

    @property
    def label(self) -> str:
        return f"{self.index}-{self.name}"


@dataclass
class Curriculum:
    path: Path
    variant: str | None
    output_dir: Path
    stages: list[Stage]

    @property
    def state_path(self) -> Path:
        return self.output_dir / STATE_FILE


def recipe_classes() -> dict[str, type]:
    from rl.config import GRPORecipe, SFTRecipe

    return {"sft": SFTRecipe, "grpo": GRPORecipe}


def is_curriculum(data: Mapping[str, Any]) -> bool:
    return "stages" in data


def _stage_recipe_path(curriculum: Path, name: str, where: str) -> Path:
    from rl.cli import recipe_path

    beside = curriculum.parent / name
    if not Path(name).is_absolute() and beside.is_file():
        return beside
    try:
        return recipe_path(name)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def _stage_entries(curriculum: Path, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(f"{curriculum}: `stages:` must be a non-empty list of stages, each a mapping with name, "
                         f"kind, recipe (and optionally variant, set)")
    for i, entry in enumerate(stages, 1):
        if not isinstance(entry, Mapping):
            raise InputError(f"{curriculum}: stage {i} must be a mapping (name, kind, recipe, ...), got {entry!r}")
    return [dict(e) for e in stages]


def _apply_variant(curriculum: Path, data: dict[str, Any], variant: str) -> dict[str, Any]:
    """The curriculum with one of its variants merged in. A variant's `stages:` maps stage names to what
    changes in that stage (a list could not say which stage an override belongs to)."""
    from reasoning.settings import merge

    variants = data.pop("variants", None) or {}
    if variant not in variants:
        raise InputError(f"{curriculum}: no variant {variant!r}; it has: {', '.join(variants) or 'none'}")
    over = dict(variants[variant] or {})
    stage_over = over.pop("stages", None) or {}
    if not isinstance(stage_over, Mapping):
        raise InputError(f"{curriculum}: variant {variant!r}: `stages:` must map stage names to overrides, e.g. "
                         f"stages: {{coldstart: {{variant: smoke}}}}")
    data = merge(data, over)
    entries = _stage_entries(curriculum, data)
    names = [e.get("name") for e in entries]
    for name, change in stage_over.items():
        if name not in names:
            raise InputError(f"{curriculum}: variant {variant!r} changes stage {name!r}, which the curriculum does "
                             f"not have; its stages: {', '.join(map(str, names))}")
        if not isinstance(change, Mapping):
            raise InputError(f"{curriculum}: variant {variant!r}, stage {name!r}: give a mapping of stage keys, "
                             f"got {change!r}")
        at = names.index(name)
        entries[at] = merge(entries[at], dict(change))
    data["stages"] = entries
    return data


def load_curriculum(name: str, variant: str | None = None, output_dir: str | None = None,
                    model: str | None = None) -> Curriculum:
    """Read and check a curriculum recipe (a bundled name or a YAML path) and resolve every stage's recipe.

    `output_dir` / `model` override the curriculum's own (the CLI's --output-dir / --model-name)."""
    from rl.cli import recipe_path

    path = recipe_path(name)
    data = read_yaml(path)
    if not is_curriculum(data):
        raise InputError(f"{path}: not a curriculum (it has no `stages:` list); run it with `parafuse train sft` "
                         f"or `train grpo`, or name a curriculum recipe")
    if variant:
        data = _apply_variant(path, data, variant)
    else:
        data.pop("variants", None)
    where = f"{path}" + (f" (variant {variant})" if variant else "")
    found, extra = flatten(data, CurriculumSettings, where, extra_keys=("stages",))
    top = build(CurriculumSettings, found)
    if output_dir:
        top.output_dir = output_dir
    if model:
        top.model = model
    if not top.output_dir:
        raise InputError(f"{where}: output_dir is empty; say where the curriculum writes (--output-dir DIR)")
    out = Path(top.output_dir)
    entries = _stage_entries(path, extra)
    specs: list[StageSettings] = []
    for i, entry in enumerate(entries, 1):
        label = f"{where}: stage {i}" + (f" {entry['name']!r}" if isinstance(entry.get("name"), str) else "")
        stage_found, _ = flatten(entry, StageSettings, label)
        spec = build(StageSettings, stage_found)
        for key in ("name", "kind", "recipe"):
            if not getattr(spec, key):
                raise InputError(f"{label}: `{key}` is missing; each stage needs name, kind ({' or '.join(KINDS)}) "
                                 f"and recipe")
        if not NAME_RE.match(spec.name):
            raise InputError(f"{label}: name {spec.name!r} must be letters, digits, '.', '_' or '-' (it names the "
                             f"stage's folder)")
        if spec.set is not None and not isinstance(spec.set, Mapping):
            raise InputError(f"{label}: `set:` must be a mapping of the recipe's keys, e.g. "
                             f"set: {{training: {{max_steps: 10}}}}; got {spec.set!r}")
        specs.append(spec)
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs, 1):
        if spec.name in seen:
            raise InputError(f"{where}: stage {i} {spec.name!r}: the name is already stage {seen[spec.name]}'s; "
                             f"stage names must be unique")
        seen[spec.name] = i
    stages: list[Stage] = []
    for i, spec in enumerate(specs, 1):
        label = f"{where}: stage {i} {spec.name!r}"
        start = (top.model or None) if i == 1 else str(out / stages[-1].label / "merged")
        stages.append(_resolve_stage(path, label, i, spec, out, start, last=i == len(specs)))
    return Curriculum(path=path, variant=variant, output_dir=out, stages=stages)


def _resolve_stage(curriculum: Path, label: str, index: int, spec: StageSettings, out: Path, start: str | None,
                   last: bool) -> Stage:
    """The stage's recipe object, built the way `train sft|grpo` builds one (recipe_values, flatten, build,
    check), with the stage's `set:` in place of command-line flags and the chaining settings on top."""
    from rl.cli import recipe_values

    cls = recipe_classes()[spec.kind]
    path = _stage_recipe_path(curriculum, spec.recipe, label)
    try:
        if is_curriculum(read_yaml(path)):
            raise InputError(f"{path} is itself a curriculum; a stage names an sft or grpo recipe")
        data, where = recipe_values(str(path), spec.variant)
        found, _ = flatten(data, cls, where)
    except InputError as e:
        hint = f" (is the stage's kind, {spec.kind}, the recipe's?)" if "unknown key" in str(e) else ""
        raise InputError(f"{label}: {e}{hint}") from None
    overrides, _ = flatten(spec.set or {}, cls, f"{label}: set")
    if ("output_dir",) in overrides:
        raise InputError(f"{label}: set: output_dir: the curriculum puts each stage in OUTPUT/<i>-<name>/; set the "
                         f"curriculum's output_dir (or --output-dir) instead")
    if ("model", "name") in overrides and index > 1:
        raise InputError(f"{label}: set: model.name: stage {index} starts from the previous stage's merged/ folder; "
                         f"remove it (only stage 1, or the curriculum's `model`, chooses a model)")
    found.update(overrides)
    stage_dir = out / f"{index}-{spec.name}"
    found[("output_dir",)] = str(stage_dir)
    if start:
        found[("model", "name")] = start
    if not last:  # the next stage loads this one's merged/ folder
        found[("save_merged",)] = True
    recipe = build(cls, found)
    try:
        recipe.check()
    except InputError as e:
        raise InputError(f"{label}: {e}") from None
    return Stage(index=index, name=spec.name, kind=spec.kind, where=where, recipe=recipe, output_dir=stage_dir,
                 start_model=recipe.model.name)


def resolved(curriculum: Curriculum) -> dict[str, Any]:
    """What `--print-recipe` shows: every stage's resolved recipe, as JSON-ready dicts."""
    return {"curriculum": str(curriculum.path), "variant": curriculum.variant,
            "output_dir": str(curriculum.output_dir),
            "stages": [{"name": s.name, "kind": s.kind, "recipe_file": s.where, "output_dir": str(s.output_dir),
                        "start_model": s.start_model, "recipe": to_dict(s.recipe)} for s in curriculum.stages]}


# ---------------------------------------------------------------------------- state


def read_state(curriculum: Curriculum) -> dict[str, Any] | None:
    path = curriculum.state_path
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e}); fix or delete it, or choose another --output-dir") from None
    if not isinstance(state, dict) or not isinstance(state.get("stages"), list):
        raise InputError(f"{path}: not a curriculum state file (no `stages` list); choose another --output-dir")
    return state


def write_state(curriculum: Curriculum, state: dict[str, Any]) -> None:
    """Write via a temporary file and a rename, so a kill mid-write leaves the previous state readable."""
    path = curriculum.state_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str))
    os.replace(tmp, path)


def new_state(curriculum: Curriculum) -> dict[str, Any]:
    return {"curriculum": str(curriculum.path), "variant": curriculum.variant,
            "stages": [{"name": s.name, "kind": s.kind, "status": "pending", "output_dir": str(s.output_dir),
                        "start_model": s.start_model, "seconds": None, "summary": None}
                       for s in curriculum.stages]}


def _check_same_stages(curriculum: Curriculum, state: dict[str, Any]) -> None:
    recorded = [(e.get("name"), e.get("kind")) for e in state["stages"]]
    now = [(s.name, s.kind) for s in curriculum.stages]
    if recorded != now:
        def show(pairs):
            return ", ".join(f"{n} ({k})" for n, k in pairs)
        raise InputError(f"{curriculum.state_path} records the stages {show(recorded)}, but the curriculum now has "
                         f"{show(now)}: resume with the same curriculum (and variant), or choose another "
                         f"--output-dir")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _main_process() -> bool:
    # Under `accelerate launch` every rank runs the stages; only one may write the state file.
    return os.environ.get("RANK", "0") == "0"


def run_stage(stage: Stage, resume: bool) -> dict[str, Any]:
    """One stage through the same entry point as `train sft|grpo` (the summary they print)."""
    if stage.kind == "sft":
        from rl.sft import run_sft

        return run_sft(stage.recipe, resume=resume)
    from rl.grpo import run_grpo

    return run_grpo(stage.recipe, resume=resume)


def run_curriculum(curriculum: Curriculum, resume: bool = False, until: str | None = None,
                   log: Callable[[str], None] = _stderr,
                   runner: Callable[[Stage, bool], dict[str, Any]] = run_stage) -> dict[str, Any]:
    """Run the stages in order (up to and including `until`), recording progress in OUTPUT/curriculum.json;
    returns that state. `resume`: skip the stages recorded as done, continue a running one from its last
    checkpoint. `runner` trains one stage (tests pass their own to watch what is run)."""
    names = [s.name for s in curriculum.stages]
    if until is not None and until not in names:
        raise InputError(f"--until {until}: no such stage; the stages are: {', '.join(names)}")
    state = read_state(curriculum)
    if state is not None and not resume:
        raise InputError(f"{curriculum.state_path} exists: this folder already holds a curriculum run; pass "
                         f"--resume to continue it, or choose another --output-dir")
    if state is None:
        if resume:
            log(f"--resume: no {STATE_FILE} in {curriculum.output_dir} yet; starting at stage 1")
        state = new_state(curriculum)
    else:
        _check_same_stages(curriculum, state)
    main = _main_process()
    total = len(curriculum.stages)
    for stage, entry in zip(curriculum.stages, state["stages"]):
        head = f"stage {stage.index}/{total} {stage.name} ({stage.kind}, {stage.where})"
        if entry.get("status") == "done":
            log(f"{head}: done earlier in {entry.get('seconds')} s, skipped ({stage.output_dir})")
        else:
            if stage.index > 1 and not Path(stage.start_model).is_dir():
                raise InputError(f"stage {stage.index} {stage.name}: its start model {stage.start_model} is missing "
                                 f"(the previous stage is recorded as done but its merged/ folder is gone); rerun "
                                 f"that stage in another --output-dir")
            continuing = entry.get("status") == "running"
            log(f"{head}: {'continuing from its last checkpoint' if continuing else 'starting'}, from model "
                f"{stage.start_model}")
            entry.update(status="running", start_model=stage.start_model, output_dir=str(stage.output_dir))
            if main:
                write_state(curriculum, state)
            started = time.perf_counter()
            summary = runner(stage, continuing)
            seconds = round(time.perf_counter() - started, 2)
            entry.update(status="done", seconds=seconds, summary=summary)
            if main:
                write_state(curriculum, state)
            wrote = [str(stage.output_dir / "final")] + (
                [str(stage.output_dir / "merged")] if stage.recipe.save_merged else [])
            log(f"{head}: done in {seconds} s; wrote {' and '.join(wrote)}")
        if stage.name == until:
            left = total - stage.index
            if left:
                log(f"--until {until}: stopping with {left} stage(s) left; `--resume` runs them")
            break
    return state


def format_help() -> str:
    """The keys of a curriculum recipe, from the settings' own help (for the CLI's epilog)."""
    import textwrap

    def item(indent: str, name: str, text: str) -> str:
        return textwrap.fill(f"{name}: {text}", 110, initial_indent=indent, subsequent_indent=indent + "    ")

    lines = ["keys of a curriculum recipe:"]
    lines += [item("  ", f.name, f.metadata["help"]) for f in dataclasses.fields(CurriculumSettings)]
    lines.append("  stages: the list of stages, in order; each one has")
    lines += [item("    ", f.name, f.metadata["help"]) for f in dataclasses.fields(StageSettings)]
    lines.append(item("  ", "variants", "NAME -> keys merged over the curriculum; its `stages:` maps a stage's "
                                        "name to the stage keys that change"))
    return "\n".join(lines)


__all__ = ["Curriculum", "CurriculumSettings", "Stage", "StageSettings", "format_help", "load_curriculum",
           "resolved", "run_curriculum", "run_stage"]
