# Two commands do all the set-up: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint bench chromium clean

# The venv is rebuilt when pyproject.toml changes; the stamp files record what was installed.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

serve: $(BIN)/.installed
	$(BIN)/bookpay serve

chromium:
	@bash scripts/ensure-chromium

test: $(BIN)/.installed-test chromium
	@bash scripts/run-tests $(BIN)/python

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
