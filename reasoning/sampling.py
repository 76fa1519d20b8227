"""`Sampling`: the one block of sampling settings, nested in every stage that samples.

An eval pool, a Fusion-of-N fusor, MathFusion's fuse and solve stages, Fusion-of-N teachers and
every parallel-thinking decoder each hold a `Sampling` of their own (with the defaults that
stage's paper uses), so a recipe says `fuse: {temperature: 0.7}` and a flag says
`--fuse-temperature 0.7`, and one knob never means two things.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoning.settings import setting
from reasoning.types import SamplingParams


@dataclass
class Sampling:
    """How one stage samples."""

    temperature: float = setting(1.0, "softmax temperature; 0 = greedy")
    top_p: float = setting(1.0, "nucleus sampling mass")
    max_tokens: int = setting(512, "cap on generated tokens per completion")
    seed: int | None = setting(None, "base seed: each request derives a stable seed of its own from it (none: the "
                                     "run's --seed where the command has one, else unseeded)")

    def __post_init__(self) -> None:
        self.params()  # the same range checks as every request

    def params(self, n: int = 1, seed: int | None = None, **overrides) -> SamplingParams:
        """The engine's `SamplingParams` for one request of this stage."""
        values = dict(n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                      seed=seed if seed is not None else self.seed)
        values.update(overrides)
        return SamplingParams(**values)

    def base_seed(self, run_seed: int | None) -> int | None:
        """The seed requests of this stage derive theirs from: its own, else the run's."""
        return self.seed if self.seed is not None else run_seed


def sampling(temperature: float = 1.0, top_p: float = 1.0, max_tokens: int = 512, seed: int | None = None):
    """A default factory for a stage's `Sampling` block with that stage's own defaults."""
    return lambda: Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
