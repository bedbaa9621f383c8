# The two commands of the README: `make site` (install, then build the writeup) and `make test`.
PY ?= python3
DATA_ROOT ?= ../shared/data
export FUNDIFF_DATA_ROOT ?= $(abspath $(DATA_ROOT))

.PHONY: install install-test site test serve

install:
	$(PY) -m pip install -q -e .

install-test:
	$(PY) -m pip install -q -e ".[test]"
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

site: install
	$(PY) -m generator build

test: install-test
	$(PY) -m pytest -q

serve: install
	$(PY) -m generator build --serve
