# The two commands of the README:
#   make workflow   set up .venv if needed, then run the whole workflow on config/config.yaml
#   make test       set up .venv if needed, then run the test suite
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
STAMP := $(VENV)/.storyrl-installed

.PHONY: workflow test setup

setup: $(STAMP)

# torch first and pinned, so that no later step can pull a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

workflow: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH snakemake --cores $(CORES)

test: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -q
