"""Shared fixtures: one tiny model, one engine or server of each kind per test session.

vLLM takes 15-40 s to start on a CPU, so every engine and server here is session-scoped;
the servers are launched in the background as soon as a collected test needs them, and
tests wait for them only when they first use one.

The tiny model comes in two variants with the same ids and weights: tags as ordinary added
tokens, and tags as special tokens (`tiny_model_special`, as the released checkpoints hold
them). The `-special` engine kinds run the special variant: in-process hf, and an OpenAI
engine on one more vLLM server (the only extra vLLM the variant costs; the in-process vLLM
engine's handling of special tags is checked without a second in-process engine).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(tempfile.gettempdir()) / "parafuse-vllm-cache"))

SERVER_FIXTURES = {"vllm_server", "transformers_server", "vllm_server_special"}
ENGINE_KINDS = ("hf", "vllm", "openai-vllm", "openai-transformers", "hf-special", "openai-vllm-special")
SPECIAL_KINDS = tuple(k for k in ENGINE_KINDS if k.endswith("-special"))

_state: dict = {}


def _tiny_dir() -> Path:
    if "tiny" not in _state:
        from reasoning.tiny_model import build_tiny_model

        _state["tiny"] = build_tiny_model(Path(tempfile.mkdtemp(prefix="parafuse-tiny-")) / "tiny")
    return _state["tiny"]


def _tiny_special_dir() -> Path:
    if "tiny-special" not in _state:
        from reasoning.tiny_model import build_tiny_model

        _state["tiny-special"] = build_tiny_model(Path(tempfile.mkdtemp(prefix="parafuse-tiny-")) / "tiny-special",
                                                  special_tags=True)
    return _state["tiny-special"]


def _server(name: str):
    """Start (once) the named server in the background; return its ServerProcess."""
    if name not in _state:
        from reasoning.testing import servers

        log_dir = tempfile.mkdtemp(prefix=f"parafuse-{name}-")
        if name in ("vllm_server", "vllm_server_special"):
            model = _tiny_dir() if name == "vllm_server" else _tiny_special_dir()
            _state[name] = servers.start_vllm_server(str(model), served_name="tiny", max_model_len=2048,
                                                     log_dir=log_dir)
        else:
            _state[name] = servers.start_transformers_server(str(_tiny_dir()), log_dir=log_dir)
    return _state[name]


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    """Launch the servers that the selected tests need now, so they boot while other tests run."""
    needed = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        needed |= names & SERVER_FIXTURES
        if "engine" in names:
            callspec = getattr(item, "callspec", None)
            kind = callspec.params.get("engine") if callspec else None
            if kind == "openai-vllm":
                needed.add("vllm_server")
            elif kind == "openai-vllm-special":
                needed.add("vllm_server_special")
            elif kind == "openai-transformers":
                needed.add("transformers_server")
    for name in sorted(needed):
        _server(name)


def pytest_sessionfinish(session, exitstatus):
    for name in SERVER_FIXTURES:
        if name in _state:
            _state.pop(name).stop()
    for key in [k for k in _state if k.startswith("engine:")]:
        _state.pop(key).close()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """Directory of the tiny random Qwen3-style model (built once per session)."""
    return _tiny_dir()


@pytest.fixture(scope="session")
def tiny_model_special() -> Path:
    """The tiny model with every tag registered as a special token (same ids and weights as `tiny_model`)."""
    return _tiny_special_dir()


@pytest.fixture(scope="session")
def vllm_server():
    return _server("vllm_server").wait()


@pytest.fixture(scope="session")
def vllm_server_special():
    return _server("vllm_server_special").wait()


@pytest.fixture(scope="session")
def transformers_server():
    return _server("transformers_server").wait()


def get_engine(kind: str):
    """One engine of each kind per session (the contract suite and other tests share them)."""
    key = f"engine:{kind}"
    if key not in _state:
        from reasoning.engines import make_engine

        model = str(_tiny_dir())
        if kind == "hf":
            _state[key] = make_engine("hf", model)
        elif kind == "hf-special":
            _state[key] = make_engine("hf", str(_tiny_special_dir()))
        elif kind == "openai-vllm-special":
            srv = _server("vllm_server_special").wait()
            _state[key] = make_engine("openai", "tiny", base_url=srv.url, tokenizer=str(_tiny_special_dir()),
                                      max_concurrency=16)
        elif kind == "vllm":
            _state[key] = make_engine("vllm", model, max_model_len=2048, enforce_eager=True)
        elif kind == "openai-vllm":
            srv = _server("vllm_server").wait()
            _state[key] = make_engine("openai", "tiny", base_url=srv.url, tokenizer=model, max_concurrency=16)
        elif kind == "openai-transformers":
            srv = _server("transformers_server").wait()
            # transformers serve seeds one global RNG, so concurrent requests would interleave
            # their draws: one request at a time keeps "same seed, same output" true.
            _state[key] = make_engine("openai", model, base_url=srv.url, tokenizer=model, max_concurrency=1)
        else:
            raise ValueError(kind)
    return _state[key]


@pytest.fixture(scope="session", params=ENGINE_KINDS)
def engine(request):
    return get_engine(request.param)
