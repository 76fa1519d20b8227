"""`EvalConfig`: everything that defines an eval run, and the guard against mixing runs."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoning.types import InputError

# Fields that decide what the sample pool is. A run directory holds one pool; adding
# strategies or budgets later reuses it, changing any of these would mix two experiments.
IDENTITY = ("benchmark", "data", "question_field", "answer_field", "limit", "engine", "model", "n", "temperature",
            "top_p", "max_tokens", "template", "template_version", "system", "seed", "allow_last_number")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class EvalConfig:
    """One `parafuse eval run`."""

    benchmark: str = _f("gsm8k", "gsm8k | math500 | aime24 | aime25 | amc23, or a name for --data")
    data_dir: str | None = _f(None, "read the benchmark from a local copy laid out like ../shared/data")
    data: str | None = _f(None, "a JSONL file of your own problems (with question_field and answer_field)")
    question_field: str = _f("question", "field holding the question in --data")
    answer_field: str = _f("answer", "field holding the gold answer in --data")
    limit: int | None = _f(None, "evaluate only the first N problems")
    engine: str = _f("hf", "hf | vllm | openai")
    model: str = _f("", "model directory, Hub id, or served model name")
    n: int = _f(16, "samples per problem in the pool; every k <= n is scored from it")
    strategies: tuple[str, ...] = _f(("plain", "majority"), "strategies to score (see eval.strategies)")
    budgets: tuple[int, ...] = _f((), "N values for parallel strategies (default: powers of two up to n)")
    token_budgets: tuple[int, ...] = _f((256, 512, 1024), "thinking-token caps for the budget strategy")
    budget_samples: int = _f(4, "samples per problem at each token cap (budget strategy)")
    forced_answer_tokens: int = _f(32, "tokens allowed after the answer is forced")
    temperature: float = _f(0.6, "sampling temperature")
    top_p: float = _f(0.95, "nucleus sampling mass")
    max_tokens: int = _f(2048, "cap on tokens per sample")
    template: str = _f("math/boxed", "prompt template (parafuse prompts list)")
    template_version: str = _f("", "hash of the template text (filled in by the run)")
    system: str | None = _f(None, "system message before each prompt")
    seed: int = _f(0, "base seed; each problem's seed is derived from it and the problem id")
    scorer: str = _f("agreement", "best-of-N scorer: agreement | shortest | longest | module:function")
    fusor_model: str | None = _f(None, "Fusion-of-N fusor model (default: the evaluated model and engine)")
    fusor_max_tokens: int = _f(1024, "cap on the fusor's answer")
    fusion_template: str = _f("fusion/fuse", "Fusion-of-N prompt template")
    allow_last_number: bool = _f(False, "grade a sample with no boxed/Final Answer by its last number")
    grader_timeout: float = _f(5.0, "hard per-item grading time limit in seconds")
    epsilon: float = _f(0.01, "saturation: the budget N* where the marginal gain falls below this")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

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


def check_run_dir(out_dir: Path, cfg: EvalConfig) -> None:
    """Refuse a run directory whose pool was made with other settings; record ours otherwise."""
    path = out_dir / "config.json"
    mine = cfg.to_dict()
    if path.exists():
        theirs = json.loads(path.read_text())
        diff = [k for k in IDENTITY if theirs.get(k) != mine.get(k)]
        if diff:
            details = "; ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} now" for k in diff)
            raise InputError(f"{out_dir} holds a run made with other settings ({details}). Mixing them would "
                             "score two experiments as one: use another --out, or the same settings.")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mine, indent=1))
