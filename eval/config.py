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

# Fields that decide what the sample pool is. A run directory holds one pool; adding
# strategies or budgets later reuses it, changing any of these would mix two experiments.
IDENTITY = ("benchmark", "level", "data", "question_field", "answer_field", "id_field", "gold_format", "choices_field",
            "limit", "engine", "model", "n", "pool", "template", "template_version", "system", "seed")
# Grading settings are not identity: the pool is graded again on every run, so they may change.
GRADE_FIELDS = ("allow_last_number", "strict_extraction", "float_tol", "grader_timeout")


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
    scorer: str = setting("agreement", "best-of-N scorer: agreement | shortest | longest | module:function")
    fusor_model: str | None = setting(None, "Fusion-of-N fusor model (default: the evaluated model and engine)")
    fusor: Sampling = nested(sampling(temperature=0.6, top_p=0.95, max_tokens=1024),
                             "sampling of the Fusion-of-N fusor's answer", aliases={"fusor_max_tokens": "max_tokens"})
    fusion_template: str = setting("fusion/fuse", "Fusion-of-N prompt template")
    fusion_subsets: int = setting(4, "Fusion-of-N: seeded size-N subsets of the pool fused per problem and N (one "
                                     "fusor call each; all of them when there are fewer), averaged")
    grading: GradeSettings = nested(GradeSettings, "how samples are graded (the settings of `eval grade`)",
                                    prefix="", aliases={name: name for name in GRADE_FIELDS})
    epsilon: float = setting(0.01, "saturation: the budget N* where the marginal gain falls below this")
    # The rethink strategy (TTSPM's sequential paradigm): chains of rounds, each round continuing the last.
    rethink_rounds: int = setting(4, "rethink: rounds per chain (round 1 is a pool sample, each further round "
                                     "continues the text so far after the cue); accuracy is reported at r = 1, 2, "
                                     "4, ... and at this value")
    rethink_samples: int = setting(2, "rethink: chains per problem; chain j continues pool sample j (at most n)")
    rethink_template: str = setting("eval/rethink", "rethink: the continuation cue written after each round")

    def resolve(self) -> None:
        """Fill in what defaults to the other settings, and check what from_dict cannot."""
        if not self.benchmark:  # a --data run is named after its file, never after the default benchmark
            self.benchmark = Path(self.data).stem if self.data else "gsm8k"
        if self.fusion_subsets < 1:
            raise InputError(f"fusion_subsets must be at least 1, got {self.fusion_subsets}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

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
