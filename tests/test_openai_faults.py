"""The openai engine against a server that misbehaves: rate limits, 5xx, hangs, dropped
connections and truncated bodies, several base URLs, a dead URL, API keys and `n` emulation.

Every server here is the in-process echo-mode fault server (no model, CPU only, fast), so
hundreds of requests run in seconds and every fault kind really happens.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest

from reasoning.engines.openai_engine import OpenAIEngine
from reasoning.runner import run_requests
from reasoning.store import GenerationStore
from reasoning.testing.fault_server import COMPLETION_PATHS, FAULT_KINDS, FaultServer, echo_text
from reasoning.testing.servers import free_port
from reasoning.types import Failure, Request, Result, SamplingParams

N_FAULTY = 200
MAX_TOKENS = 8


def make_requests(count: int, tag: str = "question", **params) -> list[Request]:
    params = {"max_tokens": MAX_TOKENS, **params}
    return [Request(messages=({"role": "user", "content": f"{tag} {i}: what is {i} + {i}?"},),
                    params=SamplingParams(seed=i, **params), id=f"{tag}-{i}") for i in range(count)]


def faulty_engine(url, **kw) -> OpenAIEngine:
    """Client timeout well under the server's hang, tiny back-off, and retries enough that a
    request fails only if ~9 attempts in a row are faulted."""
    opts = {"timeout": 1.0, "max_retries": 8, "backoff_base": 0.01, "backoff_max": 0.05,
            "max_concurrency": 64}
    return OpenAIEngine("fake", base_url=url, **{**opts, **kw})


def completion_calls(server: FaultServer) -> list[dict]:
    return [c for c in server.calls if c["path"] in COMPLETION_PATHS]


def expected_text(req: Request, seed: int, index: int = 0) -> str:
    return echo_text(req.messages[-1]["content"], seed, index, req.params.max_tokens)[0]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    cmd = [sys.executable, "-m", "parafuse.cli", "reason", "generate", "--engine", "openai",
           "--model", "fake", "--no-progress", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def write_inputs(path, n: int, tag: str = "p") -> list[str]:
    ids = [f"{tag}{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": rid, "prompt": f"prompt number {rid}"}) + "\n" for rid in ids))
    return ids


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- faults -------------------------------------------------------------------------------------
def test_every_request_ends_exactly_once_under_all_fault_kinds():
    reqs = make_requests(N_FAULTY)
    with FaultServer(fault_rate=0.2, kinds=FAULT_KINDS, seed=7, hang_s=3.0) as server:
        engine = faulty_engine(server.url)
        t0 = time.perf_counter()
        seen = list(engine.iter_results(reqs))
        elapsed = time.perf_counter() - t0
        calls = completion_calls(server)
    indices = [i for i, _ in seen]
    assert len(indices) == len(set(indices)) == N_FAULTY, "a request was lost or reported twice"
    assert sorted(indices) == list(range(N_FAULTY))
    outcomes = dict(seen)
    ok = [i for i, r in outcomes.items() if isinstance(r, Result)]
    assert all(isinstance(r, (Result, Failure)) for r in outcomes.values())
    assert len(ok) >= N_FAULTY - 2, [r.error for r in outcomes.values() if isinstance(r, Failure)]
    for i in ok:  # each answer belongs to its own request: no cross-wiring under retries
        assert outcomes[i].request_id == reqs[i].id
        assert outcomes[i].texts == [expected_text(reqs[i], seed=i)]
    for r in outcomes.values():
        if isinstance(r, Failure):
            assert "gave up after" in r.error and server.url in r.error
    kinds = Counter(c["fault"] for c in calls if c["faulted"])
    assert set(kinds) == set(FAULT_KINDS), f"not every fault kind was injected: {kinds}"
    assert any(outcomes[i].attempts > 1 for i in ok), "no request was retried"
    # Every HTTP attempt reached the server and is accounted for by some request's attempts.
    assert engine.calls == len(calls) == sum(r.attempts for r in outcomes.values())
    # Exactly one clean (unfaulted) answer per successful request: nothing was sent twice
    # once it had succeeded.
    clean = Counter(c["text"] for c in calls if not c["faulted"])
    assert sum(clean.values()) == len(ok) and max(clean.values()) == 1
    assert elapsed < 30, f"{N_FAULTY} requests took {elapsed:.1f} s"


def test_store_has_one_row_per_request_under_faults(tmp_path):
    reqs = make_requests(N_FAULTY, tag="stored")
    out = tmp_path / "out.jsonl"
    with FaultServer(fault_rate=0.2, kinds=FAULT_KINDS, seed=11, hang_s=3.0) as server, \
            GenerationStore(out) as store:
        results, summary = run_requests(faulty_engine(server.url), reqs, store, progress=False)
    rows = read_rows(out)  # raises on any line that is not JSON
    assert len(rows) == N_FAULTY
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in reqs)
    assert len({r["key"] for r in rows}) == N_FAULTY
    assert summary.ok + summary.failed == N_FAULTY and summary.ok >= N_FAULTY - 2
    assert sum(r["status"] == "ok" for r in rows) == summary.ok
    assert len(results) == N_FAULTY


def test_proxy_mode_puts_faults_in_front_of_an_upstream():
    """Proxy mode is what benches use in front of a real vLLM server; here the upstream is echo."""
    reqs = make_requests(60, tag="proxied")
    with FaultServer() as upstream, FaultServer(mode="proxy", upstream=upstream.url, fault_rate=0.3,
                                                kinds=("429", "500", "drop", "truncated"), seed=3) as proxy:
        results = faulty_engine(proxy.url).generate(reqs)
        front, back = completion_calls(proxy), completion_calls(upstream)
    assert all(isinstance(r, Result) for r in results)
    assert [r.texts for r in results] == [[expected_text(q, seed=i)] for i, q in enumerate(reqs)]
    # Only faults that spoil an answer (rather than replace it) reach the upstream.
    assert len(back) == sum(c["fault"] in (None, "truncated") for c in front)
    assert any(c["faulted"] for c in front)


@pytest.fixture
def not_http_url():
    """A port that answers every request with bytes that are not HTTP (a broken proxy)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"GARBAGE NOT HTTP\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    listener.close()


def test_a_reply_that_is_not_http_is_retried_then_a_failure_never_lost(not_http_url):
    engine = faulty_engine(not_http_url, max_retries=2)
    seen = list(engine.iter_results(make_requests(5, tag="garbage")))
    assert sorted(i for i, _ in seen) == list(range(5))
    for _, r in seen:
        assert isinstance(r, Failure) and "gave up after 3 attempts" in r.error, r
    assert engine.calls == 15


def test_an_unforeseen_error_ends_its_request_instead_of_losing_it(monkeypatch):
    reqs = make_requests(10, tag="unforeseen")
    with FaultServer() as server:
        engine = faulty_engine(server.url)
        real = engine.agenerate_safe

        async def breaks_on_three(request):
            if request.id == reqs[3].id:
                raise KeyError("no such field")
            return await real(request)

        monkeypatch.setattr(engine, "agenerate_safe", breaks_on_three)
        outcomes = dict(engine.iter_results(reqs))
    assert sorted(outcomes) == list(range(10))
    assert isinstance(outcomes[3], Failure) and "KeyError" in outcomes[3].error
    assert outcomes[3].request_id == reqs[3].id
    assert all(isinstance(outcomes[i], Result) for i in range(10) if i != 3)


# ---- several base URLs -----------------------------------------------------------------------------
def test_requests_spread_over_several_base_urls():
    reqs = make_requests(100, tag="spread")
    with FaultServer(seed=1) as a, FaultServer(seed=2) as b:
        results = faulty_engine([a.url, b.url]).generate(reqs)
        counts = len(completion_calls(a)), len(completion_calls(b))
    assert all(isinstance(r, Result) for r in results)
    assert sum(counts) == 100 and min(counts) > 0, counts


def test_cli_spreads_requests_over_several_base_urls(tmp_path):
    ids = write_inputs(tmp_path / "in.jsonl", 40)
    with FaultServer(seed=1) as a, FaultServer(seed=2) as b:
        proc = run_cli("--base-url", a.url, b.url, "--input", str(tmp_path / "in.jsonl"),
                       "--out", str(tmp_path / "out.jsonl"))
        counts = len(completion_calls(a)), len(completion_calls(b))
    assert proc.returncode == 0, proc.stderr
    assert sum(counts) == len(ids) and min(counts) > 0, counts
    rows = read_rows(tmp_path / "out.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(ids) and all(r["status"] == "ok" for r in rows)


def test_a_dead_base_url_is_retried_onto_the_live_one():
    reqs = make_requests(100, tag="halfdead")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with FaultServer() as live:
        engine = faulty_engine([dead, live.url], max_retries=3)
        results = engine.generate(reqs)
        served = completion_calls(live)
    assert all(isinstance(r, Result) for r in results), [r.error for r in results if isinstance(r, Failure)]
    assert len(served) == len(reqs), "the live server answers each request exactly once"
    assert any(r.attempts > 1 for r in results), "some requests should have tried the dead URL first"
    assert engine.calls == sum(r.attempts for r in results)


# ---- API keys --------------------------------------------------------------------------------------
@pytest.fixture
def secret(monkeypatch) -> str:
    key = f"sk-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("PARAFUSE_TEST_KEY", key)
    return key


def test_api_key_is_sent_but_never_stored_or_described(tmp_path, secret):
    reqs = make_requests(30, tag="keyed")
    out = tmp_path / "out.jsonl"
    with FaultServer(fault_rate=0.3, kinds=("500",), seed=5) as server:
        engine = faulty_engine(server.url, api_key_env="PARAFUSE_TEST_KEY", max_retries=0)
        with GenerationStore(out) as store:
            results, _ = run_requests(engine, reqs, store, progress=False)
        calls = completion_calls(server)
    assert calls and all(c["authorization"] == f"Bearer {secret}" for c in calls)
    assert any(isinstance(r, Failure) for r in results), "error rows must be checked for leaks too"
    assert secret not in out.read_text()
    assert secret not in json.dumps(engine.describe()) and secret not in repr(server)
    assert all(secret not in r.error for r in results if isinstance(r, Failure))


def test_cli_sends_api_key_from_the_named_env_var_and_never_prints_it(tmp_path, secret):
    ids = write_inputs(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    with FaultServer(fault_rate=0.3, kinds=("500",), seed=9) as server:
        # --max-retries 0 makes some requests fail, so the error summary is printed as well.
        proc = run_cli("--base-url", server.url, "--api-key-env", "PARAFUSE_TEST_KEY", "--max-retries", "0",
                       "--input", str(tmp_path / "in.jsonl"), "--out", str(out))
        calls = completion_calls(server)
    assert proc.returncode == 1, proc.stderr
    assert "status=error" in proc.stderr
    assert len(calls) == len(ids) and all(c["authorization"] == f"Bearer {secret}" for c in calls)
    for where, text in (("stdout", proc.stdout), ("stderr", proc.stderr), ("store", out.read_text())):
        assert secret not in text, f"the API key leaked into {where}"
        assert secret[10:] not in text, f"part of the API key leaked into {where}"


# ---- unreachable server ------------------------------------------------------------------------------
def test_unreachable_server_gives_a_failure_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = OpenAIEngine("fake", base_url=url, max_retries=2, backoff_base=0.01, backoff_max=0.02, timeout=2)
    [r] = engine.generate(make_requests(1, tag="nobody"))
    assert isinstance(r, Failure)
    assert url in r.error and "gave up after 3 attempts" in r.error
    assert r.attempts == 3 and engine.calls == 3


def test_cli_exits_2_when_no_server_answers(tmp_path):
    write_inputs(tmp_path / "in.jsonl", 3)
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = run_cli("--base-url", url, "--input", str(tmp_path / "in.jsonl"),
                   "--out", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2, proc.stderr
    assert f"no OpenAI-compatible server answered at {url}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()  # nothing generated: no empty output file left behind


def test_a_failed_start_keeps_an_existing_output_file(tmp_path):
    write_inputs(tmp_path / "in.jsonl", 3)
    (tmp_path / "out.jsonl").write_text("")
    proc = run_cli("--base-url", f"http://127.0.0.1:{free_port()}/v1", "--input", str(tmp_path / "in.jsonl"),
                   "--out", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2 and (tmp_path / "out.jsonl").exists()  # not ours to delete


# ---- n emulation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("ignore_n", [False, True], ids=["honours-n", "ignores-n"])
def test_n_completions_whether_or_not_the_server_honours_n(ignore_n):
    n, reqs = 4, make_requests(10, tag=f"n{ignore_n}", n=4)
    with FaultServer(ignore_n=ignore_n) as server:
        engine = faulty_engine(server.url)
        results = engine.generate(reqs)
        calls = completion_calls(server)
    assert all(isinstance(r, Result) and len(r.completions) == n for r in results)
    if ignore_n:  # one native call, then n - 1 single-completion calls with seeds seed+1 ...
        assert len(calls) == n * len(reqs)
        for i, (q, r) in enumerate(zip(reqs, results)):
            assert r.texts == [expected_text(q, seed=i + j) for j in range(n)]
    else:
        assert len(calls) == len(reqs)
        for i, (q, r) in enumerate(zip(reqs, results)):
            assert r.texts == [expected_text(q, seed=i, index=j) for j in range(n)]
    assert all(len(set(r.texts)) == n for r in results), "each completion should be a distinct sample"
    assert all(r.completion_tokens > 0 for r in results)


# ---- the fault server's own command line ----------------------------------------------------------------
def test_fault_server_cli_logs_calls_to_a_file(tmp_path, secret):
    """Tests that run the server in another process read what it saw from --log."""
    log = tmp_path / "calls.jsonl"
    cmd = [sys.executable, "-m", "reasoning.testing.fault_server", "--port", "0", "--mode", "echo",
           "--fault-rate", "0.2", "--kinds", "429,500,drop,truncated", "--log", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        engine = faulty_engine(url, api_key_env="PARAFUSE_TEST_KEY")
        results = engine.generate(make_requests(20, tag="cli"))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert all(isinstance(r, Result) for r in results)
    calls = [c for c in read_rows(log) if c["path"] in COMPLETION_PATHS]
    assert len(calls) == engine.calls and all(c["authorization"] == f"Bearer {secret}" for c in calls)
    assert secret not in err
