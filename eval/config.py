"""`EvalConfig`: everything that defines an eval run, and the guard against mixing runs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.grading.regrade import GradeSettings
from reasoning.run_folder import RunFolder
from reasoning.sampling import Sampling, sampling
from reasoning.settings import from_dict, nested, setting, to_dict
from reasoning.types import InputError

# The reference settings of a decoded strategy (`--reference`), from the method's released code: Parallel-R1's
# rollout (`ParallelThinkingAgentLoopV3`) and verifier, as its evaluation ran them (mean@16 at T=1.0, a
# 3000-token response, 4096 tokens per path, paths always at T=1.0, `Final Answer:` scored by its verifier).
REFERENCE_PRESETS: dict[str, dict[str, Any]] = {
    "parallel_r1": {"template": "methods/parallel_r1", "grader": "parallel_r1_reference", "max_total_tokens": 3000,
                    "temperature": 1.0, "top_p": 1.0,
                    # no per-request cap short of the response cap (the reference has none but the context)
                    "decoder": {"max_path_tokens": 4096, "max_summary_tokens": 3000, "path_temperature": 1.0}},
    # ThreadWeaver's evaluation script: T=0.6, top_p=0.95, its question-then-boxed instruction, graded on the
    # boxed answer (parafuse's grader reads \boxed{} too); no response cap beyond the context.
    "threadweaver": {"template": "methods/threadweaver", "grader": "parafuse", "max_total_tokens": None,
                     "temperature": 0.6, "top_p": 0.95, "decoder": {}},
    # ParaThinker's example engine run: T=0.5, P=4 paths of up to 16384 tokens, First-Finish, the <summary>
    # instruction; no response cap beyond the context.
    "parathinker": {"template": "methods/parathinker", "grader": "parafuse", "max_total_tokens": None,
                    "temperature": 0.5, "top_p": 1.0,
                    "decoder": {"num_paths": 4, "max_path_tokens": 16384, "first_finish": True}},
}
REFERENCE_HELP = ("parallel_r1 = methods/parallel_r1, Parallel-R1's verifier scoring the strategy (parafuse's verdict "
                  "kept beside it), a 3000-token response cap, 4096 tokens per path, T=1.0 and top_p=1.0 with paths "
                  "at 1.0; threadweaver = methods/threadweaver at T=0.6, top_p=0.95; parathinker = "
                  "methods/parathinker, 4 First-Finish paths of up to 16384 tokens at T=0.5; `all` = every decoded "
                  "strategy")

# Fields that decide what the sample pool is. A run directory holds one pool; adding
# strategies or budgets later reuses it, changing any of these would mix two experiments.
IDENTITY = ("benchmark", "level", "data", "question_field", "answer_field", "id_field", "gold_format", "choices_field",
            "limit", "engine", "model", "n", "pool", "template", "template_version", "system", "seed")
# Grading settings are not identity: the pool is graded again on every run, so they may change.
GRADE_FIELDS = ("allow_last_number", "strict_extraction", "float_tol", "grader_timeout", "grader")


@dataclass
class EvalConfig:
    """One `parafuse eval run`."""

    benchmark: str = setting("", "gsm8k (the default) | math500 | aime24 | aime25 | amc23 | arith (generated, see "
                                 "--level), or a name for --data (default: the file's name)")
    label: str | None = setting(None, "the run's name in reports (default MODEL@BENCHMARK)")
    level: int = setting(2, "arith: difficulty level 1-4 (people, steps per person, number range)")
    data_dir: str | None = setting(None, "read the benchmark from a local copy laid out like ../shared/data")
    data: str | None = setting(None, "a JSONL file of your own problems (with question_field and answer_field)")
    question_field: str = setting("question", "field holding the question in --data; several fields joined in order "
                                              "(body,question) or a template ('{body} {question}')")
    answer_field: str = setting("answer", "field holding the gold answer in --data (a list value: several answers, "
                                          "graded as a set)")
    id_field: str | None = setting(None, "field holding each problem's id in --data (default: a hash of the question)")
    gold_format: str = setting("auto", "how to read the gold in --data: auto (a number, text, the last \\boxed{} or "
                                       "'#### N') | gsm8k | math | aime | amc",
                               choices=("auto", "gsm8k", "math", "aime", "amc"))
    choices_field: str | None = setting(None, "field holding a multiple-choice problem's choices in --data (a list "
                                              "or letter -> text); the gold is then a letter or an index")
    limit: int | None = setting(None, "evaluate only the first N problems")
    engine: str = setting("hf", "hf | vllm | openai")
    model: str = setting("", "model directory, Hub id, or served model name")
    n: int = setting(16, "samples per problem in the pool; every k <= n is scored from it", flag="-n")
    strategies: tuple[str, ...] = setting(("plain", "majority"), "comma-separated: plain, majority, best_of_n, fusion, "
                                          "budget, rethink (sequential rounds), and the parallel-thinking decoders "
                                          "parallel_r1, threadweaver, parathinker", flag="--strategy")
    budgets: tuple[int, ...] = setting((), "N values for parallel strategies (default: powers of two up to n)")
    token_budgets: tuple[int, ...] = setting((256, 512, 1024), "thinking-token caps for the budget strategy")
    budget_samples: int = setting(4, "samples per problem at each token cap (budget strategy)")
    forced_answer_tokens: int = setting(32, "tokens allowed after the answer is forced")
    pool: Sampling = nested(sampling(temperature=0.6, top_p=0.95, max_tokens=2048),
                            "sampling of the pool (and of the budget strategy and the decoders' requests)",
                            aliases={"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"})
    template: str = setting("math/boxed", "prompt template (parafuse prompts list)")
    template_version: str = setting("", "hash of the template text (filled in by the run)")
    system: str | None = setting(None, "system message before each prompt")
    seed: int = setting(0, "base seed; each problem's seed is derived from it and the problem id")
    # The decoded strategies' own settings (parallel_r1, threadweaver, parathinker); see `decoder_settings`.
    decoder_template: tuple[str, ...] = setting(
        (), "prompt template of the decoded strategies: TEMPLATE for all of them, or STRATEGY=TEMPLATE items "
            "(parallel_r1=my/prompt); `run` is the run's --template. Unset: each method's own prompt, the one its "
            "models were trained on (methods/parallel_r1, methods/threadweaver, methods/parathinker)")
    max_total_tokens: tuple[str, ...] = setting(
        (), "response cap of each decode, over all its requests (its main requests are cut to what is left, as "
            "the decoders' --max-total-tokens): N for every decoded strategy, or STRATEGY=N items; none = no cap. "
            "Unset: the pool's max_tokens, so a decode spends no more than one plain sample may (--reference: the "
            "reference's cap)")
    reference_grading: bool = setting(False, "also grade every sample with Parallel-R1's reference verifier: "
                                             "samples.jsonl rows get reference_correct/reference_answer beside "
                                             "parafuse_correct/parafuse_answer, and results.json compares the two "
                                             "per strategy (`verdicts`)")
    reference: tuple[str, ...] = setting((), "decoded strategies run with their paper's reference settings (its "
                                             "prompt, grader, response cap and sampling): " + REFERENCE_HELP)
    scorer: str = setting("agreement", "best-of-N scorer: agreement | shortest | longest | reward:PATH_OR_ID (a "
                                       "sequence-classification reward model, the paper's BoN) | "
                                       "reward-endpoint:URL (vLLM /classify) | module:function")
    fusor_model: str | None = setting(None, "Fusion-of-N fusor model, its engine from --fusor-engine/--fusor-base-url "
                                            "(default: the evaluated model itself, with a warning: the paper fuses "
                                            "with a strong external model)")
    fusor: Sampling = nested(sampling(temperature=0.6, top_p=0.95, max_tokens=1024),
                             "sampling of the Fusion-of-N fusor's answer", aliases={"fusor_max_tokens": "max_tokens"})
    fusion_template: str = setting("auto", "Fusion-of-N prompt template: auto (fusion/fuse, which asks for "
                                           "\\boxed{}, for a math/* --template; else fusion/fuse_general) | a "
                                           "template name")
    fusion_subsets: int = setting(4, "Fusion-of-N: seeded size-N subsets of the pool fused per problem and N (one "
                                     "fusor call each; all of them when there are fewer), averaged")
    grading: GradeSettings = nested(GradeSettings, "how samples are graded (the settings of `eval grade`)",
                                    prefix="", aliases={name: name for name in GRADE_FIELDS})
    epsilon: float = setting(0.01, "saturation: the budget N* where the marginal gain falls below this")
    # The rethink strategy (TTSPM's sequential paradigm): chains of rounds, each round continuing the last.
    rethink_rounds: int = setting(4, "rethink: rounds per chain, at least 2 (round 1 is a pool sample, each "
                                     "further round continues the text so far after the cue); accuracy is reported "
                                     "at r = 1, 2, 4, ... and at this value")
    rethink_samples: int = setting(2, "rethink: chains per problem; chain j continues pool sample j (at most n)")
    rethink_template: str = setting("eval/rethink", "rethink: the continuation cue written after each round")
    decoder_samples: int | None = setting(None, "decodes per problem of each parallel-thinking decoder (parallel_r1, "
                                                "threadweaver, parathinker), each with its own seed; none: n. Their "
                                                "point is the mean over these decodes, so fewer cost less and only "
                                                "widen its spread")

    def resolve(self) -> None:
        """Fill in what defaults to the other settings, and check what from_dict cannot."""
        if not self.benchmark:  # a --data run is named after its file, never after the default benchmark
            self.benchmark = Path(self.data).stem if self.data else "gsm8k"
        from reasoning.fusion import resolve_fusion_template

        self.fusion_template = resolve_fusion_template(self.fusion_template, self.template)
        if self.fusion_subsets < 1:
            raise InputError(f"fusion_subsets must be at least 1, got {self.fusion_subsets}")
        if self.decoder_samples is not None and self.decoder_samples < 1:
            raise InputError(f"--decoder-samples must be at least 1 (or unset: n={self.n}), got "
                             f"{self.decoder_samples}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def decodes_per_problem(self) -> int:
        """How many decodes each decoded strategy makes per problem (`decoder_samples`, else n)."""
        return self.decoder_samples or self.n

    def parallel_budgets(self) -> list[int]:
        if self.budgets:
            bad = [b for b in self.budgets if not 1 <= b <= self.n]
            if bad:
                raise InputError(f"--budgets {bad} must lie between 1 and n={self.n}")
            return sorted(set(self.budgets))
        out, b = [], 1
        while b < self.n:
            out.append(b)
            b *= 2
        return out + [self.n]

    def rethink_budgets(self) -> list[int]:
        """The rounds the rethink strategy reports: 1, 2, 4, ... below rethink_rounds, and rethink_rounds."""
        if self.rethink_rounds < 1:
            raise InputError(f"rethink_rounds must be at least 1, got {self.rethink_rounds}")
        return [r for r in (2 ** i for i in range(self.rethink_rounds.bit_length())) if r < self.rethink_rounds] + \
            [self.rethink_rounds]


def check_run_dir(out_dir: Path, cfg: EvalConfig) -> RunFolder:
    """Refuse a run directory whose pool was made with other settings; record ours otherwise."""
    folder = RunFolder(out_dir, store_name="generations.jsonl")
    # Through from_dict: a config.json written before the sampling block was nested still compares.
    folder.start(cfg.to_dict(), IDENTITY, normalize=lambda old: to_dict(from_dict(EvalConfig, old, "config.json")))
    return folder


# ---- the decoded strategies' own settings -----------------------------------------------------------------

@dataclass
class DecoderSettings:
    """What one decoded strategy of a run uses: its prompt, response cap, sampling, grader and decoder settings."""

    strategy: str
    template: str  # a prompts library name (the run's --template when the run said `run`)
    max_total_tokens: int | None
    sampling: Sampling  # the pool's block, or the reference's temperature/top_p under --reference
    grader: str  # the verdict that scores this strategy
    overrides: dict[str, Any]  # decoder settings on top of `Method.config_for_run`'s
    reference: bool = False


def _per_strategy(items: tuple[str, ...], name: str, strategies: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """A `VALUE` / `STRATEGY=VALUE` list as (the value for every strategy, {strategy: its own value})."""
    every, own = None, {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            every = item.strip()
            continue
        key = key.strip().lower().replace("-", "_")
        if key not in strategies:
            raise InputError(f"{name}: {key!r} in {item!r} is not a decoded strategy; name one of "
                             f"{', '.join(strategies)} (STRATEGY=VALUE), or give a bare VALUE for all of them")
        own[key] = value.strip()
    return every, own


def _cap(text: str, name: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{name}: {text!r} must be a positive number of tokens, or none for no cap")
    return value


def reference_strategies(cfg: EvalConfig) -> tuple[str, ...]:
    """The decoded strategies `--reference` asks for (`all`: every one of the run's decoded strategies);
    an unknown one is named."""
    from reasoning.methods import METHODS

    wanted = [s.strip().lower().replace("-", "_") for s in cfg.reference]
    if "all" in wanted:
        return tuple(s for s in REFERENCE_PRESETS if s in cfg.strategies)
    for s in wanted:
        if s not in REFERENCE_PRESETS:
            why = ("has no reference preset yet; set its settings with --decoder-template, --max-total-tokens and "
                   "the pool's sampling" if s in METHODS else "is not a decoded strategy")
            raise InputError(f"--reference {s}: {s} {why} (presets: {', '.join(REFERENCE_PRESETS)})")
    return tuple(dict.fromkeys(wanted))


def decoder_settings(cfg: EvalConfig, strategy: str) -> DecoderSettings:
    """The settings of decoded strategy `strategy` in this run.

    Prompt: --decoder-template for it, else the method's own prompt (`Method.prompt_templates[0]`).
    Response cap: --max-total-tokens for it, else the pool's max_tokens. --reference replaces both
    defaults, the sampling and the grader with the reference's (a template or cap the run names for the
    strategy still wins).
    """
    import dataclasses

    from reasoning.methods import METHODS, get_method

    every, own = _per_strategy(cfg.decoder_template, "--decoder-template", METHODS)
    cap_every, cap_own = _per_strategy(cfg.max_total_tokens, "--max-total-tokens", METHODS)
    preset = REFERENCE_PRESETS.get(strategy) if strategy in reference_strategies(cfg) else None
    template = own.get(strategy, every) or (preset or {}).get("template") or get_method(strategy).prompt_templates[0]
    if template == "run":
        template = cfg.template
    cap_text = cap_own.get(strategy, cap_every)
    if cap_text is not None:
        cap = _cap(cap_text, "--max-total-tokens")
    else:
        cap = preset["max_total_tokens"] if preset else cfg.pool.max_tokens
    sampling_block = cfg.pool
    overrides: dict[str, Any] = {}
    if preset:
        main_cap = cap if cap is not None else cfg.pool.max_tokens
        sampling_block = dataclasses.replace(cfg.pool, temperature=preset["temperature"], top_p=preset["top_p"],
                                             max_tokens=main_cap)
        overrides = dict(preset["decoder"])
    grader = preset["grader"] if preset else cfg.grading.grader
    return DecoderSettings(strategy, template, cap, sampling_block, grader, overrides, reference=preset is not None)
