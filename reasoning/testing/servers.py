"""Start and stop real OpenAI-compatible servers on 127.0.0.1 (vLLM's and `transformers serve`).

Used by the test fixtures and the benches; each server is a subprocess whose log goes to a
file, so a failed start can say why.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A server subprocess; `url` is its /v1 base URL once `wait()` returns."""

    name: str
    url: str
    proc: subprocess.Popen
    log_path: Path
    model: str
    ready_path: str = "/v1/models"
    extra: dict = field(default_factory=dict)

    def wait(self, timeout: float = 240.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        base = self.url.removesuffix("/v1")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode} before it was ready; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(base + self.ready_path, timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.name} server not ready after {timeout:.0f} s; log {self.log_path}:\n"
                           f"{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _spawn(name: str, cmd: list[str], env: dict[str, str], log_dir: str | None) -> tuple[subprocess.Popen, Path]:
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="parafuse-srv-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                            start_new_session=True)
    return proc, log_path


def start_vllm_server(model: str, served_name: str | None = None, port: int | None = None,
                      max_model_len: int = 2048, extra_args: list[str] | None = None,
                      log_dir: str | None = None) -> ServerProcess:
    """vLLM's OpenAI server, started the way users start it: `parafuse serve` (reasoning/serve.py),
    which sets what the CPU build needs (KV cache size, chunked prefill off) and execs vLLM's server."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "parafuse.cli", "serve", model, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", str(max_model_len), "--served-model-name", served_name or model]
    if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        cmd += ["--kv-cache-space", "1"]  # a small cache is plenty for tests and benches (serve's default: 1/4 of RAM)
    cmd += ["--", *(extra_args or [])]
    proc, log = _spawn("vllm-server", cmd, {}, log_dir)
    return ServerProcess("vllm", f"http://127.0.0.1:{port}/v1", proc, log, served_name or model,
                         extra={"command": cmd})


def start_transformers_server(model: str, port: int | None = None, log_dir: str | None = None) -> ServerProcess:
    """`transformers serve` pinned to one local model (it ignores `n`; parafuse emulates it)."""
    port = port or free_port()
    cache = Path(log_dir or tempfile.mkdtemp(prefix="parafuse-hf-")) / "hf-cache"
    cache.mkdir(parents=True, exist_ok=True)  # its /v1/models scans the hub cache and fails if it is missing
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc, log = _spawn("transformers-serve", cmd, env, log_dir)
    return ServerProcess("transformers", f"http://127.0.0.1:{port}/v1", proc, log, model, ready_path="/health")
