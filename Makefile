# Set-up and the two everyday commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test test-all lint data browser clean

$(BIN)/fmnist-ray: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The real dataset from Debian's package where apt is available; elsewhere the first run
# downloads it once into ~/.cache/fmnist-ray.
data:
	@if [ ! -f $(DEBIAN_DATA)/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; fi

# Headless Chromium, for the test that renders the HTML report in a real browser.
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; fi

demo: $(BIN)/fmnist-ray data
	$(BIN)/fmnist-ray data
	$(BIN)/fmnist-ray sweep sweeps/smoke.yaml --storage results --name $(DEMO_NAME)
	$(BIN)/fmnist-ray report results/$(DEMO_NAME) -o reports/$(DEMO_NAME).html

test: $(BIN)/fmnist-ray data browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Also the slow tests: full sweeps on the real dataset.
test-all: $(BIN)/fmnist-ray data browser
	$(BIN)/python -m pytest -q -m ""

lint: $(BIN)/fmnist-ray
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
