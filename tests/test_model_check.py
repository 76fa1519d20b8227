"""A Hub id that cannot load (the Hub off or unreachable, the id not cached) fails at once, with what to do."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from reasoning.engines import base
from reasoning.engines.base import check_model
from reasoning.testing.servers import free_port
from reasoning.types import InputError

MISSING = "nonexistent-org/nonexistent-model"


@pytest.fixture
def hub_on(monkeypatch):
    """The Hub switched on in this process (conftest switches it off), at an address the test chooses."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    base.hub_reachable.cache_clear()
    yield lambda url: monkeypatch.setenv("HF_ENDPOINT", url)
    base.hub_reachable.cache_clear()


def test_offline_an_uncached_hub_id_fails_at_once_saying_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        check_model(MISSING)
    assert time.perf_counter() - t0 < 2.0
    msg = str(e.value)
    assert MISSING in msg and "HF_HUB_OFFLINE is set" in msg
    assert f"hf download {MISSING}" in msg and "local model folder" in msg and "unset HF_HUB_OFFLINE" in msg


def test_naming_the_model_to_key_stored_results_by_needs_no_hub(monkeypatch):
    """A fully stored rerun starts no engine, so it must not fail on a model it will not load."""
    from reasoning.engines import engine_identity

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert engine_identity("hf", MISSING) == ("hf", MISSING)


def test_offline_a_cached_hub_id_passes(monkeypatch, tmp_path):
    snapshot = tmp_path / "models--some-org--cached-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--some-org--cached-model" / "refs").mkdir()
    (tmp_path / "models--some-org--cached-model" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert check_model("some-org/cached-model") == "some-org/cached-model"


def test_an_unreachable_hub_fails_at_once_too(hub_on):
    hub_on(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="cannot be reached"):
        check_model(MISSING)
    assert time.perf_counter() - t0 < 2.5


def test_a_reachable_hub_leaves_the_id_to_the_hub(hub_on):
    """Online, an uncached id passes through (transformers or vLLM downloads it), whatever the Hub answers."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hub_on(f"http://127.0.0.1:{server.server_port}")
        assert check_model(MISSING) == MISSING
    finally:
        server.shutdown()


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_the_cli_exits_in_seconds_with_the_message_and_no_traceback(tmp_path, hub):
    (tmp_path / "p.jsonl").write_text('{"id": "q1", "prompt": "hi"}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if hub == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    exe = Path(sys.executable).with_name("parafuse")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "reason", "generate", "--model", "nonexistent-org/x", "--input", "p.jsonl",
                           "--out", "out.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "nonexistent-org/x" in proc.stderr
    assert ("HF_HUB_OFFLINE is set" if hub == "offline" else "cannot be reached") in proc.stderr
    assert elapsed < 10, f"{elapsed:.1f} s"  # ~1 s here, most of it the CLI's imports; it was 20 s / 60 s
    assert not (tmp_path / "out.jsonl").exists()
