# GPT Ladder. `make all-stages` trains both ladders (the lecture's and the modern one) and draws them; `make test` runs the tests;
# `make studies` trains the regime studies (where each piece pays) and draws them.
# Both create the virtual environment .venv and install requirements.txt on first use.
#   make all-stages PROFILE=smoke SEEDS="0 1 2"     (PROFILE: lecture, gpu, cpu, smoke; default: gpu with CUDA, else cpu)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?=
SEEDS ?=
ARGS ?=

.PHONY: all-stages studies test chart bench clean-venv

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

all-stages: $(VENV)/.installed
	$(PY) runner.py --all --resume $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

studies: $(VENV)/.installed
	$(PY) runner.py --study all --resume $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

chart: $(VENV)/.installed
	$(PY) runner.py --chart $(if $(PROFILE),--profile $(PROFILE)) $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) bench/bench.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
