"""Ctrl-C during decoding on an in-process engine exits within seconds, not after every queued call ran."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import sys, time
    from reasoning.decoders import ParallelR1Config, run_decodes
    from reasoning.engines.base import Engine
    from reasoning.types import Completion, Result

    class Slow(Engine):
        """An in-process engine whose every call takes CALL_S seconds (as a model on a loaded CPU)."""
        kind = "slow"

        def iter_results(self, requests):
            for i, r in enumerate(requests):
                time.sleep(2.0)
                yield i, Result([Completion(text="thinking", tokens=1, finish_reason="length")], prompt_tokens=1)

    jobs = [(f"q{i}", "Question?", ParallelR1Config()) for i in range(40)]
    print("started", flush=True)
    run_decodes(Slow("slow"), "parallel_r1", jobs, concurrency=40)
''')


def ctrl_c_as_in_a_terminal() -> None:
    """In the child before it starts: SIGINT delivered and default, as in a terminal, even where the suite
    runs as a background job (which inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_during_in_process_decoding_exits_within_seconds():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    assert proc.stdout.readline().strip() == "started"
    # One call runs; the pool's other worker threads each hold a call waiting for the engine's lock (asyncio
    # can cancel only calls no thread has taken yet): without the fix they would all run, 2 s each.
    time.sleep(1.0)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    elapsed = time.perf_counter() - t0
    assert elapsed < 4.0, f"exit took {elapsed:.1f} s after Ctrl-C"
    assert proc.returncode != 0


def test_a_cancelled_call_stops_the_hf_engine_mid_generation(tiny_model):
    import threading

    from reasoning.engines.hf import HFEngine
    from reasoning.types import Request, SamplingParams

    engine = HFEngine(str(tiny_model))
    request = Request(prompt="count:", params=SamplingParams(max_tokens=3000, ignore_eos=True, temperature=0))
    event = threading.Event()
    engine.cancel_event = event  # what `agenerate` sets for the call it is running
    threading.Timer(0.5, event.set).start()
    t0 = time.perf_counter()
    result = engine.generate_one(request)
    assert time.perf_counter() - t0 < 5.0
    assert 0 < result.completions[0].tokens < 3000, "generation stopped at the cancel, not at its cap"
