"""Configs of the synthesis pipelines, as dataclasses with help text on every field.

The CLI builds its flags from these fields (`add_config_args`), and `--config recipe.yaml`
fills any field the command line leaves unset (`load_config`), so a recipe file and the flags
are two spellings of the same settings. Engine flags (`--engine`, `--model`, `--base-url`,
...) come from `reasoning.engines.add_engine_args` and may appear in the YAML too.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.types import InputError

BENCHMARK_NAMES = ("gsm8k", "math500", "aime24", "aime25", "amc23")
MATHFUSION_STRATEGIES = ("sequential", "parallel", "conditional")


def _f(default, help: str, csv: bool = True, **kw):
    """A field with help text. `csv=False`: a tuple field whose items may contain commas (a YAML
    string is then one item, not a comma-separated list)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"help": help, "csv": csv}, **kw)


@dataclass
class SourceConfig:
    """Where the seed problems come from."""

    input: str = _f("", "seed pool: gsm8k-train | math-train | a JSONL file of your own problems")
    data_dir: str | None = _f(None, "local copy of the data laid out like ../shared/data (seed pools and the "
                                    "benchmarks used for decontamination); without it both come from the Hub")
    question_field: str = _f("question", "field holding the problem text in --input FILE")
    answer_field: str = _f("answer", "field holding the answer in --input FILE (optional per record)")
    id_field: str | None = _f(None, "field holding a stable id in --input FILE (default: hash of the problem)")
    limit: int | None = _f(None, "use only the first N seed problems (a smoke run)")


@dataclass
class MathFusionConfig(SourceConfig):
    """`parafuse synth mathfusion`: pair, fuse, solve, filter, deduplicate, decontaminate."""

    strategies: tuple[str, ...] = _f(MATHFUSION_STRATEGIES, "fusion strategies, comma separated")
    embedder: str = _f("auto", "pairing embeddings: auto (a cached sentence-transformers model, else TF-IDF) | "
                               "tfidf | a sentence-transformers model id or path")
    pairing_memory_mb: float = _f(256.0, "memory for one block of the similarity matrix")
    fusion_template_dir: str = _f("mathfusion", "template folder holding <strategy>.jinja for each strategy")
    temperature: float = _f(0.7, "sampling temperature of the fusion step")
    top_p: float = _f(0.95, "nucleus mass of the fusion step")
    max_tokens: int = _f(1024, "cap on the fusion reply (analysis sections + the new problem)")
    fusion_retries: int = _f(2, "new attempts after a reply without a usable problem (then it is a recorded failure)")
    solver_model: str | None = _f(None, "model that solves the fused problems (default: --model, same engine)")
    num_solutions: int = _f(4, "solutions sampled per fused problem (k); their majority share is recorded")
    solve_template: str = _f("math/boxed", "prompt template for solving a fused problem")
    solve_temperature: float = _f(0.7, "sampling temperature of the solutions")
    solve_max_tokens: int = _f(2048, "cap on each solution")
    min_majority_share: float = _f(0.0, "keep a row only when this share of its k solutions agree "
                                        "(0 keeps all, as the paper did; e.g. 0.5 for a consistency filter)")
    solution_field: str | None = _f(None, "field holding a worked solution in --input FILE (used by "
                                          "--include-originals; the named pools have theirs)")
    include_originals: bool = _f(False, "also write every seed problem with its own solution (strategy 'original'), "
                                        "as MathFusionQA does: originals + fused problems")
    check_conditional: bool = _f(True, "drop conditional rows whose answer equals neither sub-problem's "
                                       "answer (when both are known)")
    dedup_threshold: float = _f(0.8, "MinHash Jaccard above which two fused problems are near-duplicates")
    decontaminate: bool = _f(True, "drop fused problems sharing an n-gram with an evaluation benchmark")
    decontam_benchmarks: tuple[str, ...] = _f(BENCHMARK_NAMES, "benchmarks to decontaminate against")
    decontam_ngram: int = _f(8, "n-gram length (words) for decontamination")
    seed: int = _f(0, "base seed; each request's seed is derived from it and the request's id")
    system: str | None = _f(None, "system message before every prompt")
    concurrency: int = _f(64, "fused problems in flight at once (the engine bounds requests separately)")

    def check(self) -> None:
        if not self.input:
            raise InputError("--input is required: gsm8k-train, math-train or a JSONL file")
        bad = [s for s in self.strategies if s not in MATHFUSION_STRATEGIES]
        if bad or not self.strategies:
            raise InputError(f"unknown strategy {bad[0] if bad else '(none)'}; choose from "
                             f"{', '.join(MATHFUSION_STRATEGIES)}")
        _check_common(self)
        if not 0.0 <= self.min_majority_share <= 1.0:
            raise InputError(f"--min-majority-share must lie in [0, 1], got {self.min_majority_share}")
        if self.num_solutions < 1:
            raise InputError(f"--num-solutions must be >= 1, got {self.num_solutions}")
        if self.fusion_retries < 0:
            raise InputError(f"--fusion-retries must be >= 0, got {self.fusion_retries}")
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise InputError(f"--dedup-threshold must lie in (0, 1], got {self.dedup_threshold}")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass
class FusionDataConfig(SourceConfig):
    """`parafuse synth fusion`: a teacher pool answers, a fusor writes one answer from all of them."""

    teachers: tuple[str, ...] = _f((), "teacher pool, one spec each: ENGINE:MODEL[@BASE_URL][*N] "
                                       "(N samples from that teacher, default 1)", csv=False)
    template: str = _f("math/boxed", "prompt template for the teachers (generic/user for open-ended prompts)")
    temperature: float = _f(0.3, "teacher sampling temperature (the paper: one sample per teacher at 0.3)")
    top_p: float = _f(1.0, "teacher nucleus mass")
    max_tokens: int = _f(2048, "cap on each teacher answer")
    fusion_template: str = _f("fusion/fuse", "the fusor's prompt template (the same one eval's fusion strategy uses)")
    fusor_temperature: float = _f(0.3, "fusor sampling temperature")
    fusor_max_tokens: int = _f(2048, "cap on the fused answer")
    max_candidate_chars: int = _f(8000, "longer candidates are cut to their last this-many characters")
    grade: str = _f("auto", "grade candidates and fusion against the gold answer: auto (when answers exist) | "
                            "yes | no")
    seed: int = _f(0, "base seed; each request's seed is derived from it and the request's id")
    system: str | None = _f(None, "system message before every teacher prompt")
    concurrency: int = _f(32, "prompts in flight at once")

    def check(self) -> None:
        if not self.input:
            raise InputError("--input is required: gsm8k-train, math-train or a JSONL file")
        if not self.teachers:
            raise InputError("give at least one --teacher ENGINE:MODEL[@BASE_URL][*N]")
        if self.grade not in ("auto", "yes", "no"):
            raise InputError(f"--grade must be auto, yes or no, got {self.grade!r}")
        _check_common(self)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def _check_common(cfg) -> None:
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    if cfg.concurrency < 1:
        raise InputError(f"--concurrency must be >= 1, got {cfg.concurrency}")


def _to_dict(cfg) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


# ---------------------------------------------------------------------------- CLI plumbing

def _kind(cls, f: dataclasses.Field) -> type:
    """The plain type of a field (int, float, str, bool, tuple), with Optional unwrapped."""
    tp = typing.get_type_hints(cls)[f.name]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_origin(tp) or tp


def _csv(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def add_config_args(p: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), group: str | None = None) -> None:
    """One flag per dataclass field, help from its metadata. Defaults stay None so that
    `load_config` can tell a flag that was given from one that was not (YAML fills the rest)."""
    g = p.add_argument_group(group) if group else p
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, flag = _kind(cls, f), "--" + f.name.replace("_", "-")
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        help_ = f.metadata["help"] + (f" (default {shown})" if f.default not in (None, "", ()) else "")
        if kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind is tuple:
            g.add_argument(flag, type=_csv, default=None, metavar="A,B", help=help_)
        else:
            g.add_argument(flag, type=kind, default=None, help=help_)


def _coerce(cls, f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = _kind(cls, f)
    if value is None:
        return None
    if kind is tuple:
        if isinstance(value, str):
            return _csv(value) if f.metadata.get("csv", True) else (value,)
        if isinstance(value, (list, tuple)):
            return tuple(str(v) for v in value)
    elif kind is bool and isinstance(value, bool):
        return value
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind is str and isinstance(value, (str, int, float)):
        return str(value)
    raise InputError(f"{where}: {f.name} must be {kind.__name__}, got {value!r}")


def load_config(cls, args: argparse.Namespace, parser: argparse.ArgumentParser):
    """Build `cls` from defaults <- the YAML in `args.config` <- flags given on the command line.

    YAML keys may also name any other flag of the command (engine flags, --out); those are set
    on `args` when the command line left them at their default.
    """
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if getattr(args, "config", None):
        values = _read_yaml(Path(args.config), cls, args, parser)
    for name in fields:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    return cls(**{k: v for k, v in values.items() if k in fields})


def _read_yaml(path: Path, cls, args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise InputError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    dests = {a.dest for a in parser._actions}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in fields:
            values[name] = _coerce(cls, fields[name], value, f"{path}: key {key!r}")
        elif name in dests and name != "config":
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        else:
            raise InputError(f"{path}: unknown key {key!r}; valid keys: "
                             + ", ".join(sorted(fields) + sorted(d for d in dests if d not in ("help", "config"))))
    return values
