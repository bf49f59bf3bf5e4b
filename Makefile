# `make test` and `make run` both create .venv and install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint run demo clean package bench soak

venv: $(STAMP)

# --- Which Python makes .venv (only when a goal needs it: `make clean` never looks) -----------------
# python3.13 first (Chalice takes the Lambda runtime from it), then 3.12, then any python3 that is 3.12 or newer;
# pyenv's own 3.13/3.12 too when its shims are not switched on. A command that exists but does not run (a pyenv
# shim for a version that is not selected) counts as absent. Too old or none: one line, and nothing is created.
NEEDS_VENV := $(if $(MAKECMDGOALS),$(filter-out clean,$(MAKECMDGOALS)),venv)
define FIND_PYTHON
shopt -s nullglob; pyenv=$${PYENV_ROOT:-$$HOME/.pyenv}; old=; \
for p in python3.13 "$$pyenv"/versions/3.13*/bin/python3.13 python3.12 "$$pyenv"/versions/3.12*/bin/python3.12 python3; do \
  found=$$("$$p" -c 'import sys; v = sys.version_info; print("ok" if v >= (3, 12) else "old", "%d.%d.%d" % v[:3], sys.executable)' 2>/dev/null) || continue; \
  case $$found in ok\ *) echo "$$found"; exit;; esac; old=$${old:-$$found}; \
done; echo "$${old:-none}"
endef
NO_PYTHON := none: python3.13, python3.12 and python3 are missing or do not run
ifneq ($(NEEDS_VENV),)
ifeq ($(wildcard $(PY)),)
PYTHON_FOUND := $(shell $(FIND_PYTHON))
ifneq ($(word 1,$(PYTHON_FOUND)),ok)
$(error Python 3.12 or newer is needed (found $(if $(filter old,$(word 1,$(PYTHON_FOUND))),$(word 2,$(PYTHON_FOUND)) at $(wordlist 3,99,$(PYTHON_FOUND)),$(NO_PYTHON))))
endif
BASE_PYTHON := $(wordlist 3,99,$(PYTHON_FOUND))
else
VENV_FOUND := $(shell $(PY) -c 'import sys; v = sys.version_info; print("ok" if v >= (3, 12) else "old", "%d.%d.%d" % v[:3])' 2>/dev/null)
ifneq ($(word 1,$(VENV_FOUND)),ok)
$(error Python 3.12 or newer is needed ($(if $(VENV_FOUND),$(VENV) was made with $(word 2,$(VENV_FOUND)),$(PY) does not run)): run `make clean`, then make again)
endif
endif
endif

# A failed `python -m venv` (Debian without python3-venv) leaves no half-made .venv behind.
$(PY):
	@echo "make: creating $(VENV) with Python $(word 2,$(PYTHON_FOUND)) ($(BASE_PYTHON))"
	@$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(STAMP): $(PY) requirements.txt requirements-dev.txt
	@echo "make: installing requirements-dev.txt into $(VENV) (a minute or two the first time)"
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
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

# BENCHMARKS.md from a full run on this machine (~20 min: 10,000-record consumer runs, 10,000 users in the local
# stack); `make bench BENCH_ARGS=--quick` checks the harness in seconds. Not part of `make test`.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy app.py chalicelib ops local_stack tooling

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The long reliability run (< 30 min): hostile input (500 cases per route), 10,000 stream records and 10,000
# messages at 30 % injected faults, then load through the local stack. Prints the table RELIABILITY.md records
# (also written to build/reliability.md).
soak: $(STAMP)
	RELIABILITY_PROFILE=soak RELIABILITY_REPORT=build/reliability.md $(PY) -m pytest tests/reliability -q \
	  --timeout 1800 --durations=0
