# Two commands do all the set-up: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NPM    ?= npm

.PHONY: serve test lint bench chromium clean

# The venv is rebuilt when pyproject.toml changes; the stamp files record what was installed.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# TypeScript and Stripe.js's declarations, exactly as package-lock.json pins them, for the type
# check of checkout.js (tests/test_checkout_types.py). Without npm the test says so: it fails
# under CI=true and is skipped elsewhere.
node_modules/.installed: package.json package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
		$(NPM) ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the type check of checkout.js will not run (install Node.js 20+)"; \
	fi

serve: $(BIN)/.installed
	$(BIN)/bookpay serve

chromium:
	@bash scripts/ensure-chromium

test: $(BIN)/.installed-test chromium node_modules/.installed
	@bash scripts/run-tests $(BIN)/python

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache node_modules
