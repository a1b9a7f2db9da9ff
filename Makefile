# The two commands: `make up` runs the whole pipeline on this machine,
# `make test` sets up and runs every test. Both build .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# System packages the tests drive: a real browser, the compose file checker and MariaDB
# (the VICIdial live-mode test runs its own private server).

.PHONY: up test lint setup test-setup system-test-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

test-setup: $(VENV)/.installed-test system-test-deps

system-test-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	[ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

up: setup
	$(BIN)/callpulse up $(ARGS)

# `callpulse bench`: the pipeline against Quix Streams and naive Faust (about 10 min).
bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/callpulse bench $(ARGS)

# Lint, format and type checks of the packages (ruff and mypy, configured in pyproject.toml).
LINTED := core analytics warehouse streams producers dashboards callpulse bench tests
lint: test-setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# `make test` runs the lint, format and type checks first: a finding fails it like a test.
test: lint test-setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
