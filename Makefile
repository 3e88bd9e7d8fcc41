# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NAME ?= digits-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test install

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-trackers.txt
	$(PY) -m pip install -r requirements-test.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) train_pl.py --config configs/digits.yaml --name $(NAME)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)
