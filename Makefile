# Set-up and the two everyday commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test test-slow test-all lint data browser clean

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

# Two pytest workers, each taking whole test files (module fixtures such as a test cluster
# start once): most tests wait on Ray and child processes much of the time. The temporary
# folder is short: a worker's adds /popen-gwN, and a Ray started under it needs socket paths
# under 108 bytes.
PYTEST = tmp=$$(mktemp -d /tmp/pytest-XXXXXX) && status=0 && \
	$(BIN)/python -m pytest -q -n $(or $(2),2) --dist loadfile --basetemp $$tmp $(1) || status=$$?; \
	rm -rf $$tmp; exit $$status

# The default tests (about 5 minutes on 2 cores); pyproject.toml leaves the slow ones out.
test: $(BIN)/fmnist-ray data browser
	$(BIN)/ruff check .
	$(call PYTEST)

# Only the slow tests: long, repeated or timed sweeps, clusters that lose a node.
# One worker: the cluster tests' Ray Jobs agent does not come up in time beside another
# worker's sweeps.
test-slow: $(BIN)/fmnist-ray data browser
	$(call PYTEST,-m slow,1)

# Everything, in one run.
test-all: $(BIN)/fmnist-ray data browser
	$(call PYTEST,-m "")

lint: $(BIN)/fmnist-ray
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
