"""Kill `parafuse reason generate` with SIGKILL mid-run, rerun it, and check the promise of the
generation store: nothing finished is lost, nothing finished is sent again, and failed
requests (and only those) are retried on the rerun.

The server is the echo-mode fault server in this process, so it sees (and counts) every
request the CLI subprocess sends, across the kill.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from reasoning.testing.fault_server import COMPLETION_PATHS, FaultServer

N_PROMPTS = 240
CONCURRENCY = 8
KILL_AFTER_ROWS = 60


def write_inputs(path, n: int) -> dict[str, str]:
    """Distinct prompt texts, so the server's per-text call counts are per-request counts."""
    prompts = {f"q{i}": f"kill-resume prompt {i}: name {i} things" for i in range(n)}
    path.write_text("".join(json.dumps({"id": k, "prompt": v}) + "\n" for k, v in prompts.items()))
    return prompts


def cli(url: str, tmp_path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "parafuse.cli", "reason", "generate", "--engine", "openai",
            "--model", "fake", "--base-url", url,
            "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
            "--max-concurrency", str(CONCURRENCY), "--max-tokens", "8", "--no-progress", *extra]


def calls_per_prompt(server: FaultServer) -> Counter:
    return Counter(c["text"] for c in server.calls if c["path"] in COMPLETION_PATHS)


def finished_rows(path) -> list[dict]:
    """Rows that were completely written; a line cut by the kill is not a finished row."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def wait_for_rows(path, at_least: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before it could be killed: "
                                 f"{proc.stderr.read()}")
        time.sleep(0.005)
    raise AssertionError(f"fewer than {at_least} rows in {path} after {timeout} s")


def assert_one_ok_row_per_id(path, ids) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]  # every line parses
    per_id = Counter(r["id"] for r in rows)
    assert set(per_id) == set(ids) and set(per_id.values()) == {1}, "one row per request id"
    assert all(r["status"] == "ok" for r in rows)
    return rows


def test_sigkill_then_rerun_loses_nothing_and_resends_only_in_flight(tmp_path):
    prompts = write_inputs(tmp_path / "in.jsonl", N_PROMPTS)
    out = tmp_path / "out.jsonl"
    with FaultServer(delay_s=0.03) as server:
        proc = subprocess.Popen(cli(server.url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_for_rows(out, KILL_AFTER_ROWS, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        time.sleep(0.3)  # requests already on the wire reach the server's log
        finished = {r["id"] for r in finished_rows(out) if r["status"] == "ok"}
        before = calls_per_prompt(server)
        t0 = time.perf_counter()
        rerun = subprocess.run(cli(server.url, tmp_path), check=False, capture_output=True, text=True,
                               timeout=120)
        rerun_s = time.perf_counter() - t0
        after = calls_per_prompt(server)
    assert proc.returncode == -signal.SIGKILL
    assert rerun.returncode == 0, rerun.stderr
    assert KILL_AFTER_ROWS <= len(finished) < N_PROMPTS, "the kill should land mid-run"
    assert f"({len(finished)} already in the store)" in rerun.stderr
    assert_one_ok_row_per_id(out, prompts)
    for rid in finished:  # finished before the kill: never sent again
        assert before[prompts[rid]] == after[prompts[rid]] == 1, rid
    # Sent but not yet in the file at the kill: in flight, or answered and still queued for the
    # writer. Only these may be resent, each once; their number depends on timing.
    in_flight = {t for t in before if t not in {prompts[r] for r in finished}}
    assert len(in_flight) < N_PROMPTS - len(finished), "the kill should leave unsent requests"
    assert all(after[t] == 2 for t in in_flight), "each in-flight request is resent once"
    assert all(after[t] == 1 for t in prompts.values() if t not in before)
    assert sum(after.values()) == N_PROMPTS + len(in_flight)
    assert rerun_s < 60


def test_failed_requests_are_recorded_then_retried_exactly_once(tmp_path):
    prompts = write_inputs(tmp_path / "in.jsonl", N_PROMPTS)
    out = tmp_path / "out.jsonl"
    with FaultServer(fault_rate=0.3, kinds=("500",), seed=13) as server:
        first = subprocess.run(cli(server.url, tmp_path, "--max-retries", "0"), check=False,
                               capture_output=True, text=True, timeout=120)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        before = calls_per_prompt(server)
        server.fault_rate = 0.0
        second = subprocess.run(cli(server.url, tmp_path, "--max-retries", "0"), check=False,
                                capture_output=True, text=True, timeout=120)
        after = calls_per_prompt(server)
    assert first.returncode == 1, first.stderr
    assert "status=error" in first.stderr and "rerun the same command" in first.stderr
    failed = {r["id"] for r in rows if r["status"] == "error"}
    assert len(rows) == N_PROMPTS and {r["id"] for r in rows} == set(prompts)
    assert 0.15 * N_PROMPTS < len(failed) < 0.45 * N_PROMPTS, len(failed)
    assert all("HTTP 500" in r["error"] for r in rows if r["status"] == "error")
    assert set(before.values()) == {1}, "with --max-retries 0 each request is sent once"
    assert second.returncode == 0, second.stderr
    assert after - before == Counter({prompts[rid]: 1 for rid in failed}), "exactly the failed ones again"
    assert_one_ok_row_per_id(out, prompts)  # compacted: the error rows are gone
