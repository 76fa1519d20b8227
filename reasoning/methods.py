"""The registry of parallel-thinking methods: each method's facts, declared once.

A `Method` names the format module (parser, validator, serializer), the decoder module and its
config class, the tags, which decoder settings cap one phase of requests, which settings a run
overrides so that every request samples as the run says, and the prompt templates the method
uses. The decoders, `reason decode`, eval's decoder strategies and `rl/` read it; adding a
method (Multiverse, APR, NPR) means one format module, one decoder module and one entry here.

    from reasoning.methods import get_method
    method = get_method("threadweaver")
    decode, Config = method.decode, method.config_class
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from reasoning.formats import tags
from reasoning.types import InputError


@dataclass(frozen=True)
class Method:
    """One parallel-thinking method (see the module docstring)."""

    name: str
    paper: str  # title of the paper that defines it
    tags: tuple[str, ...]
    format_module: str
    decoder_module: str
    config_name: str  # the decoder config class in decoder_module
    phase_caps: tuple[str, ...]  # decoder settings capping one phase's requests (main requests: sampling.max_tokens)
    # Decoder settings that make every request follow the run's sampling block (a reference that fixes
    # one phase's temperature, say), applied when a run, not the method's reference, sets the sampling.
    follow_run: Mapping[str, Any] = field(default_factory=dict)
    # Templates (prompts library names) the method is prompted with; the first is its own prompt, the default
    # of eval's decoder strategies and `reason decode` (the models were trained on it).
    prompt_templates: tuple[str, ...] = ()
    # The decoder setting capping each branch request (a path, a thread): `reason decode` maps
    # --max-path-tokens and --max-thread-tokens onto it, whichever the method calls it.
    branch_cap: str = "max_path_tokens"
    # Shared settings that have no effect on this method, each with why: `reason decode` refuses
    # them (flag or recipe) instead of ignoring them.
    refuses: Mapping[str, str] = field(default_factory=dict)

    @property
    def format(self) -> ModuleType:
        return importlib.import_module(self.format_module)

    @property
    def decoder(self) -> ModuleType:
        return importlib.import_module(self.decoder_module)

    @property
    def config_class(self) -> type:
        return getattr(self.decoder, self.config_name)

    @property
    def decode(self):
        """`async decode(engine, source, cfg, key="") -> DecodeResult`."""
        return self.decoder.decode

    def config_for_run(self, sampling, **overrides: Any):
        """A decoder config sampling every request with `sampling` (a `Sampling` block), every phase
        capped at its max_tokens, and `overrides` on top."""
        cls = self.config_class
        values = {name: sampling.max_tokens for name in self.phase_caps}
        values.update(self.follow_run)
        values.update(overrides)
        return cls(sampling=dataclasses.replace(sampling), **values)


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method(
        name="parallel_r1", paper="Parallel-R1: Towards Parallel Thinking via Reinforcement Learning",
        tags=tags.PARALLEL_R1, format_module="reasoning.formats.parallel_r1",
        decoder_module="reasoning.decoders.parallel_r1", config_name="ParallelR1Config",
        phase_caps=("max_path_tokens", "max_summary_tokens"), follow_run={"path_temperature": None},
        prompt_templates=("methods/parallel_r1", "math/boxed")),
    Method(
        name="threadweaver",
        paper="ThreadWeaver: Adaptive Threading for Efficient Parallel Reasoning in Language Models",
        tags=tags.THREADWEAVER, format_module="reasoning.formats.threadweaver",
        decoder_module="reasoning.decoders.threadweaver", config_name="ThreadWeaverConfig",
        phase_caps=("max_thread_tokens",), branch_cap="max_thread_tokens",
        prompt_templates=("methods/threadweaver", "math/boxed"),
        refuses={"max_summary_tokens": "ThreadWeaver has no summary request (what follows a join is a main "
                                       "request, capped by --max-tokens)"}),
    Method(
        name="parathinker",
        paper="ParaThinker: Native Parallel Thinking as a New Paradigm to Scale LLM Test-time Compute",
        tags=tags.PARATHINKER, format_module="reasoning.formats.parathinker",
        decoder_module="reasoning.decoders.parathinker", config_name="ParaThinkerConfig",
        phase_caps=("max_path_tokens", "max_summary_tokens"), prompt_templates=("methods/parathinker", "math/boxed"),
        refuses={"force_open": "ParaThinker's paths always open at the prompt"}),
)}

METHODS: tuple[str, ...] = tuple(REGISTRY)


def method_prompts() -> dict[str, str]:
    """{method: its own prompt template} (the first of `Method.prompt_templates`): the prompts under
    `methods/` that eval's decoder strategies and `reason decode` use by default."""
    return {name: m.prompt_templates[0] for name, m in REGISTRY.items() if m.prompt_templates}


def get_method(name: str) -> Method:
    """The registered method called `name`; an unknown name is an InputError listing the known ones."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise InputError(f"unknown decoding method {name!r} (a parallel-thinking method); choose one of: "
                         f"{', '.join(METHODS)}")
    return REGISTRY[key]


__all__ = ["METHODS", "REGISTRY", "Method", "get_method", "method_prompts"]
