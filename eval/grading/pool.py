"""A process pool that runs math-verify with a hard per-item time limit.

Why processes: math-verify's own timeouts use ``signal.alarm``, which works only in the main
thread, and a SymPy computation that has started cannot be interrupted from inside the process
anyway. So math-verify runs with its timeouts disabled (``parsing_timeout=None``,
``timeout_seconds=None``) in worker processes, and the parent enforces the limit: a worker that
has spent more than ``timeout_s`` on one item is killed (SIGKILL), the item is graded
"timeout", a fresh worker replaces it and the rest of its chunk goes back on the queue.

Start method: ``forkserver`` (``spawn`` where there is none). Plain ``fork`` is not safe here: the
parent may hold CUDA contexts, vLLM/torch threads or locks, and a forked child inherits them in an
undefined state. A forkserver is a fresh interpreter started once; it preloads math-verify and
SymPy, so each (re)started worker is a cheap fork of a clean process that never saw torch.
Workers never import the parent's ``__main__`` (their code is all in this module): a worker is
started with ``__main__``'s file and spec hidden from multiprocessing, so grading works from
``python -`` (stdin), ``python -c``, a notebook or a REPL, where there is no main file to
import, and a script that creates a Grader needs no ``if __name__ == "__main__":`` guard for it.

Protocol over one duplex pipe per worker:
    worker -> parent  ("ready", pid)                   once, after imports
    parent -> worker  [(gold, answer), ...]           a chunk; None means exit
    worker -> parent  ("gold",) ... ("parsed",)        around the parse of a gold it has not seen
    worker -> parent  (k, correct, reason, gold_new)   one per item, in chunk order
Items are batched in chunks so the pipe round trips stay a small part of the cost, and each
worker parses each distinct gold once (its own cache), so sorting the items by gold before
chunking keeps those parses to about one per gold.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from eval.grading.boxed import braces_balanced

PRELOAD = ("math_verify", "eval.grading.pool")
GOLD_CACHE_SIZE = 4096
BOOT_TIMEOUT_S = 120.0
WARM_UP = (("1", "1"), ("\\frac{1}{2}", "x=\\sqrt{2}"), ("(1,2)", "[1,2]"), ("\\{1,2\\}", "1,2"),
           ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
           ("x^2+1", "1+x^2"), ("50\\%", "0.5"), ("\\text{(B)}", "B"))
MAX_BOOT_FAILURES = 3
WARM_ENV = "PARAFUSE_GRADER_WARM_PRELOAD"


# ---------------------------------------------------------------- worker side


def wrap_latex(s: str) -> str:
    """Hand an extracted answer to math-verify as LaTeX: inside ``\\boxed{}`` when its braces
    balance (math-verify then takes exactly this span), else inside ``$...$``."""
    if braces_balanced(s):
        return "\\boxed{" + s + "}"
    return "$" + s.replace("$", "") + "$"


class MathVerifyJudge:
    """math-verify's `verify(parse(gold), parse(answer))`, gold first, each distinct gold parsed once.

    Runs in a worker process (timeouts disabled: the parent enforces them). Also usable in
    process, e.g. by tests that count parse calls.
    """

    def __init__(self, cache_size: int = GOLD_CACHE_SIZE) -> None:
        import logging

        import math_verify

        # math-verify logs a warning when its timeouts are off, and one per failed parse: the
        # pool handles both, so keep worker stderr quiet.
        for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._mv = math_verify
        self._golds: dict[str, list] = {}
        self._cache_size = cache_size
        self.gold_parses = 0
        self.answer_parses = 0

    def has_gold(self, gold: str) -> bool:
        return gold in self._golds

    def parse_gold(self, gold: str) -> list:
        parsed = self._golds.get(gold)
        if parsed is None:
            if len(self._golds) >= self._cache_size:
                self._golds.clear()
            try:
                parsed = self._mv.parse(wrap_latex(gold), parsing_timeout=None)
            except Exception:  # parse() catches nearly everything itself; a gold that still fails is bad
                parsed = []
            self.gold_parses += 1
            self._golds[gold] = parsed
        return parsed

    def judge(self, gold: str, answer: str) -> tuple[bool, str]:
        try:
            g = self.parse_gold(gold)
            if not g:
                return False, "unparseable_gold"
            p = self._mv.parse(wrap_latex(answer), parsing_timeout=None)
            self.answer_parses += 1
            if not p:
                return False, "math_verify"
            return bool(self._mv.verify(g, p, timeout_seconds=None)), "math_verify"
        except MemoryError:
            return False, "error:MemoryError"
        except RecursionError:
            return False, "error:RecursionError"
        except Exception as e:  # math-verify raises on a few exotic inputs; never crash the pool
            return False, f"error:{type(e).__name__}"


_warmed = False


def warm_up() -> None:
    """Run a few items through math-verify: the first calls build its regexes and SymPy's caches
    (about 1 s), which should never be charged to an item's time limit."""
    global _warmed
    judge = MathVerifyJudge()
    for gold, answer in WARM_UP:
        judge.judge(gold, answer)
    _warmed = True


# The forkserver imports this module (PRELOAD) with WARM_ENV set: warming up there once means
# every worker forked from it, including replacements of killed ones, starts warm in milliseconds.
if os.environ.get(WARM_ENV) == "1" and multiprocessing.parent_process() is None:
    try:
        warm_up()
    except Exception:
        pass


def _limit_memory(mb: int | None) -> None:
    if not mb:
        return
    try:
        import resource

        limit = int(mb) * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def worker_main(conn, memory_limit_mb: int | None = None) -> None:
    """Entry point of one worker process."""
    _limit_memory(memory_limit_mb)
    if not _warmed:  # not inherited from a warm forkserver: pay it here, before "ready"
        warm_up()
    judge = MathVerifyJudge()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for k, (gold, answer) in enumerate(chunk):
            gold_new = not judge.has_gold(gold)
            if gold_new:  # tell the parent, so a timeout here is blamed on the gold
                conn.send(("gold",))
                judge.parse_gold(gold)
                conn.send(("parsed",))
            correct, reason = judge.judge(gold, answer)
            conn.send((k, correct, reason, gold_new))


# ---------------------------------------------------------------- parent side


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Extend (never replace) the preload list; it only matters if the forkserver has not
        # started yet, and preloading more modules there is harmless to other users.
        try:
            from multiprocessing import forkserver

            current = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
            missing = [m for m in PRELOAD if m not in current]
            if missing:
                ctx.set_forkserver_preload(current + missing)
        except Exception:
            pass
        return ctx
    return multiprocessing.get_context("spawn")


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_hidden():
    """While a worker starts: `__main__` shows multiprocessing neither a file nor a module name.

    spawn and forkserver children re-import the parent's main module from what these say
    (`multiprocessing.spawn.get_preparation_data`); under `python -` the file is "<stdin>",
    which cannot be imported, so every worker died at start-up. A worker needs nothing from
    `__main__`, so it is never imported there.
    """
    main = sys.modules.get("__main__")
    with _MAIN_LOCK:
        saved = {name: vars(main)[name] for name in ("__file__", "__spec__")
                 if main is not None and name in vars(main)}
        try:
            for name in saved:
                if name == "__file__":
                    delattr(main, name)
                else:
                    setattr(main, name, None)
        except (AttributeError, TypeError):  # an exotic __main__: start it as it is
            pass
        try:
            yield
        finally:
            for name, value in saved.items():
                try:
                    setattr(main, name, value)
                except (AttributeError, TypeError):
                    pass


class _Worker:
    def __init__(self, ctx, memory_limit_mb: int | None) -> None:
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=worker_main, args=(child_conn, memory_limit_mb), daemon=True,
                                name="parafuse-grader")
        with _main_hidden():
            self.proc.start()
        child_conn.close()
        self.conn = parent_conn
        self.started = time.monotonic()
        self.ready = False
        self.chunk: list[tuple[int, str, str]] | None = None  # (index, gold, answer)
        self.pos = 0  # results received for the current chunk
        self.item_start = 0.0
        self.in_gold = False  # the current item is parsing a new gold

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(2)
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass


def _shutdown(workers: list[_Worker]) -> None:
    for w in workers:
        try:
            w.conn.send(None)
        except Exception:
            pass
    deadline = time.monotonic() + 1.0
    for w in workers:
        w.proc.join(max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            w.kill()
        else:
            try:
                w.conn.close()
            except Exception:
                pass
    workers.clear()


class JudgePool:
    """Runs (gold, answer) items through math-verify in worker processes, `timeout_s` per item."""

    def __init__(self, workers: int, timeout_s: float, memory_limit_mb: int | None = 4096) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if not timeout_s or timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.n_workers = workers
        self.timeout_s = float(timeout_s)
        self.memory_limit_mb = memory_limit_mb
        self._ctx = None
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._bad_golds: set[str] = set()  # golds whose parse timed out: do not retry them
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        self.stats = {"items": 0, "timeouts": 0, "workers_started": 0, "workers_killed": 0, "gold_parses": 0}

    @property
    def start_method(self) -> str:
        return self._context().get_start_method()

    def _context(self):
        if self._ctx is None:
            self._ctx = _context()
        return self._ctx

    def _spawn(self) -> _Worker:
        # The forkserver (if this start launches it) inherits this variable and warms up once.
        # It is set only around the start so that no other child of this process sees it.
        ctx = self._context()
        owned = WARM_ENV not in os.environ
        if owned and ctx.get_start_method() == "forkserver":
            os.environ[WARM_ENV] = "1"
        try:
            w = _Worker(ctx, self.memory_limit_mb)
        finally:
            if owned:
                os.environ.pop(WARM_ENV, None)
        self._workers.append(w)
        self.stats["workers_started"] += 1
        return w

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.stats["workers_killed"] += 1
        if w in self._workers:
            self._workers.remove(w)
        self._spawn()

    def start(self) -> None:
        """Start the workers now (otherwise they start on the first `run`) and wait until they are ready."""
        with self._lock:
            while len(self._workers) < self.n_workers:
                self._spawn()
            self._run([], lambda i, c, r: None, wait_boot=True)

    def close(self) -> None:
        with self._lock:
            _shutdown(self._workers)

    def run(self, items: Sequence[tuple[int, str, str]], on_result: Callable[[int, bool, str], None]) -> None:
        """Judge each (index, gold, answer); calls on_result(index, correct, reason) once per item."""
        with self._lock:
            while len(self._workers) < self.n_workers:
                self._spawn()
            self._run(items, on_result)

    def _run(self, items, on_result, wait_boot: bool = False) -> None:  # noqa: C901 - one event loop
        items = sorted(items, key=lambda it: it[1])  # same gold together: one parse per worker
        n = len(items)
        self.stats["items"] += n
        # small chunks (about 16 per worker, at most 32 items): a single pipe message dispatches
        # a chunk, and the last chunks finish close together so no worker idles at the end
        size = max(1, min(32, math.ceil(n / (self.n_workers * 16)))) if n else 1
        queue: deque[list[tuple[int, str, str]]] = deque(items[i:i + size] for i in range(0, n, size))
        boot_failures = 0

        def dispatch(w: _Worker) -> None:
            while queue:
                chunk = queue.popleft()
                keep = []
                for it in chunk:
                    if it[1] in self._bad_golds:
                        on_result(it[0], False, "unparseable_gold")
                    else:
                        keep.append(it)
                if keep:
                    try:
                        w.conn.send([(g, a) for _, g, a in keep])
                    except (OSError, ValueError):  # it died while idle: requeue, replace it
                        queue.appendleft(keep)
                        self._replace(w)
                        return
                    w.chunk, w.pos, w.in_gold = keep, 0, False
                    w.item_start = time.monotonic()
                    return

        def fail_current(w: _Worker, reason: str) -> None:
            """The worker died or overran on its current item: grade it, requeue the rest, replace it."""
            chunk, pos = w.chunk or [], w.pos
            if pos < len(chunk):
                idx, gold, _ = chunk[pos]
                if reason == "timeout":
                    self.stats["timeouts"] += 1
                    if w.in_gold:
                        self._bad_golds.add(gold)
                        reason = "unparseable_gold"
                on_result(idx, False, reason)
                rest = chunk[pos + 1:]
                if rest:
                    queue.appendleft(rest)
            w.chunk = None
            self._replace(w)

        while True:
            for w in list(self._workers):
                if w.ready and w.chunk is None and queue:
                    dispatch(w)
            busy = [w for w in self._workers if w.chunk is not None]
            booting = [w for w in self._workers if not w.ready]
            if not busy and not queue and (not booting or not wait_boot):
                return  # a replacement still booting is picked up by the next run
            now = time.monotonic()
            deadlines = [w.item_start + self.timeout_s for w in busy] + [w.started + BOOT_TIMEOUT_S for w in booting]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.05
            ready_conns = multiprocessing.connection.wait([w.conn for w in busy + booting], timeout=wait_s)
            by_conn = {id(w.conn): w for w in busy + booting}
            for conn in ready_conns:
                w = by_conn[id(conn)]
                try:
                    # drain everything this worker has sent so far
                    while True:
                        msg = conn.recv()
                        if not w.ready:
                            if msg and msg[0] == "ready":
                                w.ready = True
                                boot_failures = 0
                        elif msg == ("gold",):
                            w.in_gold = True
                        elif msg == ("parsed",):
                            w.in_gold = False
                        elif w.chunk is not None:
                            k, correct, reason, gold_new = msg
                            idx = w.chunk[k][0]
                            if gold_new:
                                self.stats["gold_parses"] += 1
                            on_result(idx, bool(correct), reason)
                            w.pos = k + 1
                            w.in_gold = False
                            w.item_start = time.monotonic()
                            if w.pos >= len(w.chunk):
                                w.chunk = None
                        if not conn.poll():
                            break
                except (EOFError, OSError, ConnectionError):
                    if not w.ready:
                        boot_failures += 1
                        if boot_failures >= MAX_BOOT_FAILURES:
                            raise RuntimeError("math-verify grading workers keep dying at start-up "
                                               f"(start method {self.start_method})") from None
                    fail_current(w, "error:worker_died")
            now = time.monotonic()
            for w in list(self._workers):
                if w.chunk is not None and now - w.item_start > self.timeout_s:
                    fail_current(w, "timeout")
                elif not w.ready and now - w.started > BOOT_TIMEOUT_S:
                    boot_failures += 1
                    if boot_failures >= MAX_BOOT_FAILURES:
                        raise RuntimeError("math-verify grading workers did not start within "
                                           f"{BOOT_TIMEOUT_S:.0f} s")
                    self._replace(w)
