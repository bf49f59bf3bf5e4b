# `make test` and `make run` both create .venv and install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# python3.13 when it runs (Chalice picks the Lambda runtime from the interpreter), else python3.
BASE_PYTHON := $(shell for p in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null) python3; do \
	  if $$p -c 'import sys' >/dev/null 2>&1; then echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: venv test unit lint typecheck run demo clean package

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The local stack in the foreground until Ctrl-C: emulator, dev resources, API, pollers (see README).
EMULATOR_PORT ?= 4566
API_PORT ?= 8000
run: $(STAMP)
	$(PY) -m local_stack --emulator-port $(EMULATOR_PORT) --api-port $(API_PORT)

# The walkthrough against a running `make run` (another terminal).
demo: $(STAMP)
	$(PY) -m local_stack.demo --api http://127.0.0.1:$(API_PORT) --emulator http://127.0.0.1:$(EMULATOR_PORT)

# `make package STAGE=prod`: the CloudFormation (SAM) template of a stage, failure settings merged, linted.
STAGE ?= prod
package: $(STAMP)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) \
	  --merge-template infra/merge-template.yaml build/$(STAGE)
	$(VENV)/bin/cfn-lint build/$(STAGE)/sam.yaml

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy chalicelib ops local_stack tooling

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
