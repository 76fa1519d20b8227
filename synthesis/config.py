"""Configs of the synthesis pipelines, as dataclasses with help text on every field.

The CLI builds its flags from these fields and `--config recipe.yaml` fills any field the command
line leaves unset, both through `reasoning.settings`, so a recipe file and the flags are two
spellings of the same settings. Each stage that samples has its own nested `Sampling` block
(`fuse`, `solve`; `teacher`, `fusor`): `fuse: {temperature: 0.7}` in YAML, `--fuse-temperature`
on the command line, and the older flat spellings (`--temperature`, `--solve-max-tokens`) still
work. Engine flags (`--engine`, `--model`, `--base-url`, ...) come from
`reasoning.engines.add_engine_args` and may appear in the YAML too.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from reasoning.sampling import Sampling, sampling
from reasoning.settings import build, flatten, nested, setting, to_dict
from reasoning.types import InputError

BENCHMARK_NAMES = ("gsm8k", "math500", "aime24", "aime25", "amc23")
MATHFUSION_STRATEGIES = ("sequential", "parallel", "conditional")
SOLUTION_PICKS = ("majority", "first")

# `--preset NAME`: settings laid under the recipe and the flags (defaults <- preset <- recipe <-
# flags). "paper" is MathFusion as published (Pei et al., 2025, arXiv 2503.16212): pairs by
# text-embedding-3-large, one teacher solution per fused problem kept unchecked (no agreement
# filter, no answer check, no dedup or decontamination described), and the seed problems with
# their original solutions next to the fused ones (MathFusionQA = originals + fused).
MATHFUSION_PRESETS: dict[str, dict[str, Any]] = {
    "clean": {},
    "paper": {"embedder": "openai:text-embedding-3-large", "embedder_fallback": False, "num_solutions": 1,
              "solution_pick": "first", "min_majority_share": 0.0, "check_conditional": False, "dedup": False,
              "decontaminate": False, "include_originals": True},
}
PAPER_SUMMARY = ("text-embedding-3-large pairing, 1 solution kept as is, no agreement, conditional, dedup or "
                 "decontamination filter, originals included")


@dataclass
class SourceConfig:
    """Where the seed problems come from."""

    input: str = setting("", "seed pool: gsm8k-train | math-train | a JSONL file of your own problems")
    data_dir: str | None = setting(None, "local copy of the data laid out like ../shared/data (seed pools and the "
                                    "benchmarks used for decontamination); without it both come from the Hub")
    question_field: str = setting("question", "field holding the problem text in --input FILE")
    answer_field: str = setting("answer", "field holding the answer in --input FILE (optional per record)")
    id_field: str | None = setting(None, "field holding a stable id in --input FILE (default: hash of the problem)")
    limit: int | None = setting(None, "use only the first N seed problems (a smoke run)")


@dataclass
class MathFusionConfig(SourceConfig):
    """`parafuse synth mathfusion`: pair, fuse, solve, filter, deduplicate, decontaminate."""

    strategies: tuple[str, ...] = setting(MATHFUSION_STRATEGIES, "fusion strategies, comma separated")
    embedder: str = setting("auto", "pairing embeddings: auto (a cached sentence-transformers model, else TF-IDF) | "
                               "tfidf | openai:MODEL (an OpenAI-compatible /v1/embeddings endpoint; the paper: "
                               "openai:text-embedding-3-large) | a sentence-transformers model id or path")
    max_pairs: int | None = setting(None, "fuse only the first N pairs (over all pools, in pairing order) while every "
                                          "seed problem is still paired and, with --include-originals, written: sets "
                                          "the share of fused rows (MathFusion's data-scale ablation); default all")
    pairing_memory_mb: float = setting(256.0, "memory for one block of the similarity matrix")
    fusion_template_dir: str = setting("mathfusion", "template folder holding <strategy>.jinja for each strategy")
    fuse: Sampling = nested(sampling(temperature=0.7, top_p=0.95, max_tokens=1024),
                            "sampling of the fusion step (max_tokens caps the analysis sections + the new problem)",
                            aliases={"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"})
    fusion_retries: int = setting(2, "new attempts after a reply without a usable problem (then it is a recorded "
                                     "failure)")
    solver_model: str | None = setting(None, "model that solves the fused problems (default: --model, same engine)")
    num_solutions: int = setting(4, "solutions sampled per fused problem (k); their majority share is recorded")
    solve_template: str = setting("math/boxed", "prompt template for solving a fused problem")
    solve: Sampling = nested(sampling(temperature=0.7, top_p=0.95, max_tokens=2048),
                             "sampling of the solutions (top_p is 1 when temperature is 0)")
    min_majority_share: float = setting(0.0, "keep a row only when this share of its k solutions agree "
                                        "(0: no agreement filter, e.g. 0.5 for a consistency filter)")
    solution_field: str | None = setting(None, "field holding a worked solution in --input FILE (used by "
                                          "--include-originals; the named pools have theirs)")
    include_originals: bool = setting(False, "also write every seed problem with its own solution (strategy "
                                             "'original'), "
                                        "as MathFusionQA does: originals + fused problems")
    check_conditional: bool = setting(True, "drop conditional rows whose answer equals neither sub-problem's "
                                       "answer (when both are known)")
    dedup_threshold: float = setting(0.8, "MinHash Jaccard above which two fused problems are near-duplicates")
    decontaminate: bool = setting(True, "drop fused problems sharing an n-gram with an evaluation benchmark")
    decontam_benchmarks: tuple[str, ...] = setting(BENCHMARK_NAMES, "benchmarks to decontaminate against")
    decontam_ngram: int = setting(8, "n-gram length (words) for decontamination")
    seed: int = setting(0, "base seed; each request's seed is derived from it and the request's id")
    system: str | None = setting(None, "system message before every prompt")
    concurrency: int = setting(64, "fused problems in flight at once (the engine bounds requests separately)")
    embeddings_base_url: str | None = setting(None, "OpenAI-compatible server for --embedder openai:MODEL, ending in "
                                                    "/v1 (vLLM, text-embeddings-inference; default OpenAI's API)")
    embeddings_api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the embeddings "
                                                            "endpoint's key (never logged or stored)")
    embedding_batch_size: int = setting(256, "texts per request to an embeddings endpoint")
    embedder_fallback: bool = setting(True, "with --embedder auto: pair by TF-IDF when no embedding model can be "
                                            "used here (--no-embedder-fallback: stop and say why)")
    solution_pick: str = setting("majority", "which of the k solutions a row keeps: majority (the first giving the "
                                             "most common answer: self-consistency selection) | first (the first "
                                             "sample, unchecked)", choices=SOLUTION_PICKS)
    dedup: bool = setting(True, "drop near-duplicate fused problems (MinHash above --dedup-threshold)")
    preset: str = setting("clean", "starting settings: clean (parafuse's defaults: 4 solutions with a majority "
                                   "pick, conditional check, dedup, decontamination) | paper (MathFusion's: "
                                   + PAPER_SUMMARY + "); flags and recipe keys still override it",
                          choices=tuple(MATHFUSION_PRESETS))

    def check(self) -> None:
        if not self.input:
            raise InputError("--input is required: gsm8k-train, math-train or a JSONL file")
        if self.embedding_batch_size < 1:
            raise InputError(f"--embedding-batch-size must be >= 1, got {self.embedding_batch_size}")
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
        if self.max_pairs is not None and self.max_pairs < 1:
            raise InputError(f"--max-pairs must be >= 1, got {self.max_pairs}")
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise InputError(f"--dedup-threshold must lie in (0, 1], got {self.dedup_threshold}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_preset(self, explicit: Collection[tuple[str, ...]] = ()) -> MathFusionConfig:
        """This config with its preset's settings filled in, except the fields in `explicit`
        (field paths a recipe or a flag set: those win over the preset)."""
        if self.preset not in MATHFUSION_PRESETS:
            raise InputError(f"--preset must be one of {', '.join(MATHFUSION_PRESETS)}, got {self.preset!r}")
        changes = {k: v for k, v in MATHFUSION_PRESETS[self.preset].items() if (k,) not in set(explicit)}
        return dataclasses.replace(self, **changes) if changes else self


def mathfusion_config(values: Mapping[str, Any], where: str = "settings") -> MathFusionConfig:
    """A MathFusionConfig from a plain dict (YAML/JSON spelling), its `preset` laid under the given keys:
    `mathfusion_config({"input": "gsm8k-train", "preset": "paper", "num_solutions": 4})` is the paper's
    settings with four solutions."""
    found, _ = flatten(values, MathFusionConfig, where)
    return build(MathFusionConfig, found).with_preset(found)


@dataclass
class FusionDataConfig(SourceConfig):
    """`parafuse synth fusion`: a teacher pool answers, a fusor writes one answer from all of them."""

    teachers: tuple[str, ...] = setting((), "teacher pool, one spec each: "
                                       "ENGINE:MODEL[@BASE_URL][*N][,OPTION=VALUE...] (N samples from that teacher, "
                                       "default 1; OPTIONs: engine flags without `--`, else the command's)", csv=False)
    template: str = setting("math/boxed", "prompt template for the teachers (generic/user for open-ended prompts)")
    teacher: Sampling = nested(sampling(temperature=0.3, top_p=1.0, max_tokens=2048),
                               "sampling of every teacher answer (the paper: one sample per teacher at 0.3)",
                               aliases={"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"})
    fusion_template: str = setting("auto", "the fusor's prompt template, as eval's fusion strategy: auto "
                                           "(fusion/fuse, which asks for \\boxed{}, for a math/* --template; else "
                                           "fusion/fuse_general, for open-ended prompts) | a template name")
    fusor: Sampling = nested(sampling(temperature=0.3, top_p=1.0, max_tokens=2048), "sampling of the fused answer")
    max_candidate_chars: int = setting(8000, "longer candidates are cut to their last this-many characters")
    grade: str = setting("auto", "grade candidates and fusion against the gold answer: auto (when answers exist) | "
                            "yes | no")
    seed: int = setting(0, "base seed; each request's seed is derived from it and the request's id")
    system: str | None = setting(None, "system message before every teacher prompt")
    concurrency: int = setting(32, "prompts in flight at once")
    bon_scorer: str | None = setting(None, "also pick each prompt's best-of-N candidate with this eval scorer "
                                           "(reward:PATH_OR_ID | reward-endpoint:URL | agreement | ...) and write "
                                           "bon, bon_index, bon_score and fused_score: the paper's BoN data from the "
                                           "same candidates")

    def check(self) -> None:
        if not self.input:
            raise InputError("--input is required: gsm8k-train, math-train or a JSONL file")
        if self.bon_scorer:
            from eval.strategies import check_scorer

            check_scorer(self.bon_scorer)
        if not self.teachers:
            raise InputError("give at least one --teacher ENGINE:MODEL[@BASE_URL][*N]")
        if self.grade not in ("auto", "yes", "no"):
            raise InputError(f"--grade must be auto, yes or no, got {self.grade!r}")
        _check_common(self)
        from reasoning.fusion import resolve_fusion_template

        self.fusion_template = resolve_fusion_template(self.fusion_template, self.template)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _check_common(cfg) -> None:
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    if cfg.concurrency < 1:
        raise InputError(f"--concurrency must be >= 1, got {cfg.concurrency}")
