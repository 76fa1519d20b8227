"""GRPO rewards of the papers, as plain TRL reward functions.

Each reward is an object built from a config dataclass and called the way TRL 1.16's
`GRPOTrainer(reward_funcs=[...])` calls a function:

    reward(prompts, completions, **kwargs) -> list[float]

- `completions` are strings, or chat message lists (`[{"role": "assistant", "content": ...}]`);
  the text of the last message is read. With `decode_ids` the text is instead decoded from the
  `completion_ids` kwarg keeping special tokens (for a tokenizer whose tags are special tokens:
  TRL's own decode drops them).
- A decoder rollout (`rl.rollout`) passes each response's text as the `rollout_text` kwarg: it
  is read instead of the completion (its tags are kept, whatever the tokenizer calls special).
- The gold answer is a dataset column that TRL passes as a kwarg (`answer` by default,
  `answer_field` to change it).
- Correctness goes through eval's grader (`eval.grading`, the settings of `eval grade`): its
  math-verify calls run in worker processes with a hard time limit, never on the caller's
  thread, and a timed-out item is graded wrong. Pass `grader=` to share one, and call `close()`
  (or use the reward as a context manager) to stop its workers.

Rewards (r_acc below is 1 for a correct answer and `incorrect_reward` otherwise):

- `AccuracyReward`: r_acc, +-1 by default (Parallel-R1, arXiv 2509.07980, §3 reward design, DAPO stage);
  `incorrect_reward=0` gives 0/1.
- `FormatReward`: `valid_reward` when the format's checker finds no problem, else
  `invalid_reward`; the checker is `reasoning.formats.<format>.validate(text, mode=...)`, the
  authors' reference check by default.
- `ParallelR1AlternatingReward` (Parallel-R1, §3 reward design: the alternating reward): on 8 of
  every 10 rollout batches r_acc (+-1); on the other 2, 1.2 for a correct answer with at least one
  `<Parallel>` block and a reference-valid format, 1.0 for a correct answer without a block, -1
  otherwise (a correct answer in a malformed block included). See `ParallelR1Schedule` for which
  batches are which.
- `ParallelR1GSM8KReward` (Parallel-R1, §3 reward design: the GSM8K RL stage):
  1 * is_parallel * format_ok for a correct answer, else 0.
- `ThreadWeaverReward` (ThreadWeaver, arXiv 2512.07843, its P-GRPO reward):
  correct: 1 + w * f * min(1 - L_crit / L_total, clip) with w = 1.0, f = 0.5, clip = 0.2 (at most
  +0.1); incorrect: `incorrect_reward`, -1 as the released code's default (the paper's README
  says 0.0: set it to 0). L_crit and L_total are `reasoning.formats.metrics` over the whole
  response, inserted tokens included, counted with the tokenizer when one is given; a rollout
  that measured them on its ids can pass them as kwargs instead.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eval.grading.regrade import GradeSettings, make_grader
from reasoning.formats import get_format
from reasoning.formats.trace import FormatError
from reasoning.settings import nested, setting
from reasoning.types import InputError

FORMATS = ("parallel_r1", "threadweaver", "parathinker")
ROLLOUT_TEXT = "rollout_text"  # the kwarg `rl.rollout` fills with each decoded response
ROLLOUT_FAILED = "rollout_failed"  # ... and with whether each decode failed (no score then)
MODES = ("reference", "strict")


# ---------------------------------------------------------------------------- shared settings


@dataclass
class AnswerSettings:
    """Where a reward reads the gold answer and the completion text, and how it grades them."""

    answer_field: str = setting("answer", "the dataset column (a reward kwarg in TRL) that holds each gold answer")
    decode_ids: bool = setting(False, "read each completion from the completion_ids kwarg decoded with special "
                                      "tokens kept (needs a tokenizer; for tags that are special tokens, which "
                                      "TRL's decoded completions drop)")
    grading: GradeSettings = nested(GradeSettings, "how answers are graded (the settings of `eval grade`; "
                                                   "grader=parallel_r1_reference is Parallel-R1's verifier)")


@dataclass
class FormatCheck:
    """Which format checker a reward calls."""

    format: str = setting("parallel_r1", "the trace format whose checker is called", choices=FORMATS)
    mode: str = setting("reference", "reference: the authors' own check (the rewards of the papers); strict: "
                                     "parafuse's grammar", choices=MODES)
    require_final_answer: bool = setting(False, "parallel_r1, strict mode: also require a last `Final Answer:` line")
    skip_conclusion_check: bool = setting(False, "threadweaver, reference mode: accept a block without exactly one "
                                                 "<Conclusion> (rollouts run with no_conclusion)")
    first_finish: bool = setting(False, "parathinker, strict mode: read paths cut by First-Finish "
                                        "(reference mode always does)")

    def problems(self, text: str) -> list[FormatError]:
        """The checker's problems with `text` (empty: valid)."""
        if self.format not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        module = get_format(self.format)
        if self.format == "parallel_r1":
            return module.validate(text, mode=self.mode, require_final_answer=self.require_final_answer)
        if self.format == "threadweaver":
            return module.validate(text, mode=self.mode, skip_conclusion_check=self.skip_conclusion_check)
        return module.validate(text, mode=self.mode, first_finish=self.first_finish)

    def valid(self, text: str) -> bool:
        return not self.problems(text)


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string, or the content of the last chat message ("" for none)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content") if isinstance(completion[-1], dict) else completion[-1]
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):  # content parts: [{"type": "text", "text": ...}, ...]
            return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return str(content)
    return ""


def column(kwargs: dict[str, Any], name: str, n: int, reward: str) -> list[Any]:
    """A per-completion kwarg as a list of n values (TRL passes dataset columns as lists; a scalar is broadcast)."""
    if name not in kwargs:
        given = sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric"))
        raise InputError(f"{reward}: no {name!r} kwarg (given: {', '.join(given) or 'none'}); keep the column in "
                         f"the dataset (remove_unused_columns=False) or set answer_field")
    value = kwargs[name]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"{reward}: {name!r} has {len(value)} values for {n} completions")
        return list(value)
    return [value] * n


class GradedReward:
    """The shared part: texts from completions, verdicts from eval's grader, the grader's life cycle."""

    name = "reward"

    def __init__(self, answer: AnswerSettings | None = None, *, grader: Any = None, tokenizer: Any = None):
        self.answer = answer or AnswerSettings()
        self.tokenizer = tokenizer
        self._grader = grader
        self._own_grader = grader is None
        if self.answer.decode_ids and tokenizer is None:
            raise InputError(f"{self.name}: decode_ids needs a tokenizer")
        self.__name__ = self.name  # TRL names a reward function's metrics after __name__

    @property
    def grader(self):
        if self._grader is None:
            self._grader = make_grader(self.answer.grading)
        return self._grader

    def close(self) -> None:
        """Stop the grader's workers (only a grader this reward made itself)."""
        if self._own_grader and self._grader is not None:
            self._grader.close()
            self._grader = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickling leaves out a grader this reward made (its worker processes); the copy makes its own."""
        state = dict(self.__dict__)
        if self._own_grader:
            state["_grader"] = None
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def texts(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[str]:
        if kwargs.get(ROLLOUT_TEXT) is not None:  # a decoder rollout's response, its tags kept
            return [str(t) for t in column(kwargs, ROLLOUT_TEXT, len(completions), self.name)]
        if self.answer.decode_ids:
            ids = column(kwargs, "completion_ids", len(completions), self.name)
            return [self.tokenizer.decode(list(i), skip_special_tokens=False) for i in ids]
        return [completion_text(c) for c in completions]

    def correct(self, texts: Sequence[str], kwargs: dict[str, Any]) -> list[bool]:
        """One verdict per text; an empty text, a missing answer or a timeout is wrong."""
        golds = column(kwargs, self.answer.answer_field, len(texts), self.name)
        verdicts = [False] * len(texts)
        todo = [i for i, t in enumerate(texts) if t.strip() and golds[i] is not None]
        if todo:
            grades = self.grader.grade_many([(golds[i], texts[i]) for i in todo])
            for i, g in zip(todo, grades):
                verdicts[i] = bool(g.correct)
        return verdicts

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                 **kwargs: Any) -> list[float | None]:
        texts = self.texts(completions, kwargs)
        scores = [float(r) for r in self.score(texts, kwargs)]
        # A rollout whose decode failed has no score: TRL leaves a row every reward gives None out of its
        # group's baseline and gives it no advantage (rather than a -1 that would lift its group's others).
        if kwargs.get(ROLLOUT_FAILED) is not None:
            scores = [None if bad else r for r, bad in zip(scores, column(kwargs, ROLLOUT_FAILED, len(scores),
                                                                          self.name))]
        return scores

    def score(self, texts: list[str], kwargs: dict[str, Any]) -> list[float]:
        raise NotImplementedError


BLOCK_OPENER = {"parallel_r1": "<Parallel>", "threadweaver": "<Parallel>", "parathinker": "<think1>"}


def count_parallel_blocks(text: str, fmt: str = "parallel_r1") -> int:
    """The block openers of format `fmt` in a text (Parallel-R1's is_parallel: `<Parallel>` count >= 1)."""
    return text.count(BLOCK_OPENER[fmt])


# ---------------------------------------------------------------------------- accuracy


@dataclass
class AccuracyConfig:
    """Accuracy reward: one value for a correct answer, another for a wrong one."""

    answer: AnswerSettings = nested(AnswerSettings, "the gold answer, the completion text and the grader", prefix="")
    correct_reward: float = setting(1.0, "reward of a correct answer")
    incorrect_reward: float = setting(-1.0, "reward of a wrong, missing or timed-out answer: -1 gives +-1 "
                                            "(Parallel-R1's DAPO stage), 0 gives 0/1")


class AccuracyReward(GradedReward):
    """r = correct_reward if the grader says correct, else incorrect_reward (Parallel-R1, arXiv 2509.07980, §3)."""

    name = "accuracy"

    def __init__(self, config: AccuracyConfig | None = None, **kw: Any):
        self.config = config or AccuracyConfig()
        super().__init__(self.config.answer, **kw)

    def score(self, texts, kwargs):
        c = self.config
        return [c.correct_reward if ok else c.incorrect_reward for ok in self.correct(texts, kwargs)]


# ---------------------------------------------------------------------------- format


@dataclass
class FormatConfig:
    """Format reward: whether the format's checker accepts the completion."""

    check: FormatCheck = nested(FormatCheck, "the format checker", prefix="")
    valid_reward: float = setting(1.0, "reward of a completion the checker accepts")
    invalid_reward: float = setting(0.0, "reward of one it rejects, and of an empty completion")
    require_block: bool = setting(False, "also count a completion without any block (no <Parallel>; "
                                         "parathinker: no <think1>) as invalid (the checkers accept plain text)")
    decode_ids: bool = setting(False, "read each completion from completion_ids with special tokens kept "
                                      "(needs a tokenizer)")


class FormatReward(GradedReward):
    """r = valid_reward if `reasoning.formats.<format>.validate(text, mode)` finds nothing, else invalid_reward.

    The reference checkers are the papers' own (Parallel-R1, arXiv 2509.07980, §3 reward design, its
    format term; ThreadWeaver, arXiv 2512.07843, its data filter; ParaThinker, arXiv 2509.04475, its
    engine's output). No grader is used.
    """

    name = "format"

    def __init__(self, config: FormatConfig | None = None, *, tokenizer: Any = None):
        self.config = config or FormatConfig()
        super().__init__(AnswerSettings(decode_ids=self.config.decode_ids), tokenizer=tokenizer)  # no grader

    def score(self, texts, kwargs):
        c = self.config
        out = []
        for t in texts:
            ok = bool(t.strip()) and c.check.valid(t) and (
                not c.require_block or count_parallel_blocks(t, c.check.format) > 0)
            out.append(c.valid_reward if ok else c.invalid_reward)
        return out


# ---------------------------------------------------------------------------- Parallel-R1


@dataclass
class ParallelR1Schedule:
    """Which rollout batches of Parallel-R1's alternating reward are accuracy-only.

    The reference counts its steps in rollout (generation) batches from 1, and gives the
    accuracy reward when (step - 1) % period < accuracy_steps: steps 1-8, 11-18, ... are
    accuracy-only, steps 9-10, 19-20, ... the parallel phase. Here batches are counted from 0,
    so batch b is reference step b + 1: batches 0-7, 10-17, ... accuracy, 8-9, 18-19, ...
    parallel. A validation pass after b completed batches is reference step b (before training:
    step 0, which (0 - 1) % 10 = 9 puts in the parallel phase, as in the reference).
    """

    period: int = setting(10, "rollout batches in one cycle of the schedule")
    accuracy_steps: int = setting(8, "accuracy-only batches at the start of each cycle; the rest are the "
                                     "parallel phase")
    steps_per_batch: int = setting(1, "optimizer steps (trainer_state.global_step) per generation batch: "
                                      "steps_per_generation * num_iterations / gradient_accumulation_steps in "
                                      "GRPOConfig terms (2 reproduces the reference's two PPO updates per batch)")
    batch_kwarg: str = setting("generation_batch", "a kwarg (e.g. from rollout_func) holding the 0-based "
                                                   "generation-batch index; when present it wins over "
                                                   "trainer_state")
    phase_kwarg: str = setting("reward_phase", "a kwarg (e.g. a constant eval-dataset column) whose value `eval` "
                                               "marks a validation pass: it is scored as reference step "
                                               "global_step // steps_per_batch, a training batch as that + 1")

    def __post_init__(self) -> None:
        if self.period < 1 or not 0 <= self.accuracy_steps <= self.period or self.steps_per_batch < 1:
            raise InputError(f"alternating schedule: need period >= 1, 0 <= accuracy_steps <= period and "
                             f"steps_per_batch >= 1; got {self.period}, {self.accuracy_steps}, {self.steps_per_batch}")

    def parallel_phase_at_step(self, step: int) -> bool:
        """Whether 1-based reference step `step` is in the parallel phase (0 is the validation before training)."""
        return (step - 1) % self.period >= self.accuracy_steps

    def parallel_phase(self, batch: int) -> bool:
        """Whether 0-based generation batch `batch` is in the parallel phase."""
        return self.parallel_phase_at_step(batch + 1)

    def reference_step(self, kwargs: dict[str, Any]) -> int:
        """The 1-based reference step of the batch being scored, from the kwargs TRL (or a caller) passes."""
        if kwargs.get(self.batch_kwarg) is not None:
            return _one_int(kwargs[self.batch_kwarg], self.batch_kwarg) + 1
        state = kwargs.get("trainer_state")
        if state is None or getattr(state, "global_step", None) is None:
            raise InputError(f"parallel_r1_alternating: pass trainer_state (TRL does) or {self.batch_kwarg}= "
                             f"(the 0-based generation-batch index) to place the batch in the schedule")
        done = int(state.global_step) // self.steps_per_batch
        phase = kwargs.get(self.phase_kwarg)
        if isinstance(phase, (list, tuple)):
            phase = phase[0] if phase else None
        return done if phase == "eval" else done + 1


def _one_int(value: Any, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if not value or any(v != value[0] for v in value):
            raise InputError(f"parallel_r1_alternating: {name} must be one batch index for the whole call, got "
                             f"{value!r}")
        value = value[0]
    return int(value)


@dataclass
class ParallelR1AlternatingConfig:
    """Parallel-R1's alternating accuracy / parallel reward (Stage 2)."""

    answer: AnswerSettings = nested(AnswerSettings, "the gold answer, the completion text and the grader", prefix="")
    schedule: ParallelR1Schedule = nested(ParallelR1Schedule, "which batches are accuracy-only")
    check: FormatCheck = nested(FormatCheck, "the format checker of the parallel phase", prefix="")
    correct_reward: float = setting(1.0, "accuracy phase: reward of a correct answer")
    incorrect_reward: float = setting(-1.0, "both phases: reward of a wrong answer (and, in the parallel phase, of "
                                            "a correct one in a malformed block)")
    parallel_reward: float = setting(1.2, "parallel phase: correct, with >= 1 <Parallel> block and a valid format")
    sequential_reward: float = setting(1.0, "parallel phase: correct, with no <Parallel> block")


class ParallelR1AlternatingReward(GradedReward):
    """Parallel-R1 (arXiv 2509.07980, §3 reward design: the alternating reward of its Stage 2 RL).

    accuracy phase:  r = correct_reward if correct else incorrect_reward            (+-1)
    parallel phase:  r = parallel_reward    if correct and #<Parallel> >= 1 and format valid   (1.2)
                         sequential_reward  if correct and #<Parallel> == 0                    (1.0)
                         incorrect_reward   otherwise, a correct but malformed answer included (-1)
    The phase comes from `ParallelR1Schedule`. TRL's `log_metric`, when given, logs the phase.
    """

    name = "parallel_r1_alternating"

    def __init__(self, config: ParallelR1AlternatingConfig | None = None, **kw: Any):
        self.config = config or ParallelR1AlternatingConfig()
        super().__init__(self.config.answer, **kw)

    def score(self, texts, kwargs):
        c = self.config
        parallel = c.schedule.parallel_phase_at_step(c.schedule.reference_step(kwargs))
        if callable(kwargs.get("log_metric")):
            kwargs["log_metric"]("parallel_phase", float(parallel))
        out = []
        for text, ok in zip(texts, self.correct(texts, kwargs)):
            if not ok:
                out.append(c.incorrect_reward)
            elif not parallel:
                out.append(c.correct_reward)
            elif count_parallel_blocks(text, c.check.format) == 0:
                out.append(c.sequential_reward)
            elif c.check.valid(text):
                out.append(c.parallel_reward)
            else:
                out.append(c.incorrect_reward)
        return out


@dataclass
class ParallelR1GSM8KConfig:
    """Parallel-R1's GSM8K-stage reward: accuracy times parallel times format."""

    answer: AnswerSettings = nested(AnswerSettings, "the gold answer, the completion text and the grader", prefix="")
    check: FormatCheck = nested(FormatCheck, "the format checker", prefix="")
    correct_reward: float = setting(1.0, "reward of a correct answer with >= 1 <Parallel> block and a valid format")


class ParallelR1GSM8KReward(GradedReward):
    """Parallel-R1 (arXiv 2509.07980, §3 reward design: the GSM8K RL stage that teaches the format):

    r = correct_reward * is_parallel * format_ok if correct, else 0,
    with is_parallel = [#<Parallel> >= 1] and format_ok the reference format check.
    """

    name = "parallel_r1_gsm8k"

    def __init__(self, config: ParallelR1GSM8KConfig | None = None, **kw: Any):
        self.config = config or ParallelR1GSM8KConfig()
        super().__init__(self.config.answer, **kw)

    def score(self, texts, kwargs):
        c = self.config
        out = []
        for text, ok in zip(texts, self.correct(texts, kwargs)):
            is_parallel = count_parallel_blocks(text, c.check.format) >= 1
            out.append(c.correct_reward * float(ok and is_parallel and c.check.valid(text)))
        return out


# ---------------------------------------------------------------------------- ThreadWeaver


@dataclass
class ThreadWeaverConfig:
    """ThreadWeaver's P-GRPO reward: correctness plus a clipped acceleration bonus."""

    answer: AnswerSettings = nested(AnswerSettings, "the gold answer, the completion text and the grader", prefix="")
    correct_reward: float = setting(1.0, "reward of a correct answer, before the acceleration bonus")
    incorrect_reward: float = setting(-1.0, "reward of a wrong answer: -1 is the released code's default, 0 what the "
                                            "paper's README states")
    acceleration_weight: float = setting(1.0, "weight of the acceleration term (the code's acceleration_ratio_reward)")
    acceleration_factor: float = setting(0.5, "factor of the acceleration term (acceleration_ratio_reward_factor)")
    acceleration_clip: float = setting(0.2, "upper clip of 1 - L_crit / L_total (clip_max)")
    format: str = setting("threadweaver", "the trace format read for L_crit and L_total", choices=FORMATS)
    critical_kwarg: str = setting("critical_path_len", "a kwarg with each completion's L_crit measured by the rollout "
                                                       "on its ids; used (with total_kwarg) when present")
    total_kwarg: str = setting("total_len", "a kwarg with each completion's L_total measured by the rollout")


class ThreadWeaverReward(GradedReward):
    """ThreadWeaver (arXiv 2512.07843, P-GRPO, its parallelization-aware reward):

    correct:   r = correct_reward + acceleration_weight * acceleration_factor * min(1 - L_crit / L_total, clip)
    incorrect: r = incorrect_reward

    L_total counts every response token and L_crit the tokens on the critical path (outside blocks,
    block tags and outlines, the longest thread), inserted tokens included, as
    `reasoning.formats.metrics.text_metrics` computes them with the tokenizer's count (tags as one
    token; an approximate count without a tokenizer). A response without a block, an empty one or
    one whose blocks do not parse gets no bonus (ratio 0). `critical_kwarg`/`total_kwarg`, when
    the rollout passes them, are used instead.
    """

    name = "threadweaver"

    def __init__(self, config: ThreadWeaverConfig | None = None, *, count_tokens: Callable[[str], int] | None = None,
                 **kw: Any):
        self.config = config or ThreadWeaverConfig()
        super().__init__(self.config.answer, **kw)
        if count_tokens is None and self.tokenizer is not None:
            count_tokens = self.tokenizer_tokens
        self.count_tokens = count_tokens

    def tokenizer_tokens(self, text: str) -> int:
        """The tokenizer's token count of a piece of text (a tag added as a token is one)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def lengths(self, text: str) -> tuple[int, int]:
        """(L_crit, L_total) of one response; (0, 0) when it is empty or does not parse."""
        from reasoning.formats.metrics import text_metrics

        if not text.strip():
            return 0, 0
        try:
            m = text_metrics(text, self.config.format, self.count_tokens)
        except FormatError:
            return 0, 0
        return m.critical_path_tokens, m.total_tokens

    def acceleration_ratio(self, critical: float, total: float) -> float:
        """1 - L_crit / L_total, 0 for an empty response."""
        return 1.0 - critical / total if total > 0 else 0.0

    def bonus(self, critical: float, total: float) -> float:
        c = self.config
        ratio = max(0.0, self.acceleration_ratio(critical, total))
        return c.acceleration_weight * c.acceleration_factor * min(ratio, c.acceleration_clip)

    def score(self, texts, kwargs):
        c = self.config
        n = len(texts)
        given = (kwargs.get(c.critical_kwarg) is not None and kwargs.get(c.total_kwarg) is not None)
        crit = column(kwargs, c.critical_kwarg, n, self.name) if given else [None] * n
        total = column(kwargs, c.total_kwarg, n, self.name) if given else [None] * n
        out = []
        for i, ok in enumerate(self.correct(texts, kwargs)):
            if not ok:
                out.append(c.incorrect_reward)
                continue
            lc, lt = (crit[i], total[i]) if crit[i] is not None and total[i] is not None else self.lengths(texts[i])
            out.append(c.correct_reward + self.bonus(lc, lt))
        return out


REWARDS = {
    "accuracy": (AccuracyReward, AccuracyConfig),
    "format": (FormatReward, FormatConfig),
    "parallel_r1_alternating": (ParallelR1AlternatingReward, ParallelR1AlternatingConfig),
    "parallel_r1_gsm8k": (ParallelR1GSM8KReward, ParallelR1GSM8KConfig),
    "threadweaver": (ThreadWeaverReward, ThreadWeaverConfig),
}


def make_reward(name: str, config: Any = None, **kw: Any) -> GradedReward:
    """The reward called `name` (a key of REWARDS) with its config (default: the papers' settings)."""
    if name not in REWARDS:
        raise InputError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
    cls, cfg_cls = REWARDS[name]
    return cls(config or cfg_cls(), **kw)
