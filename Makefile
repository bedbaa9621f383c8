# The two commands of the README: `make site` (install, then build the writeup) and `make test`.
PY ?= python3
# The offline mirror beside the checkout is the data root where it exists; elsewhere runs read
# $FUNDIFF_DATA_ROOT, else ~/.cache/fundiff/data (`python -m experiments data download` fills it).
# The tests read only their own sample (tests/data), so `make test` needs neither.
DATA_ROOT ?= ../shared/data
ifneq ($(wildcard $(DATA_ROOT)/MNIST),)
export FUNDIFF_DATA_ROOT ?= $(abspath $(DATA_ROOT))
endif

.PHONY: install install-test site test serve

install:
	@echo "pip install -e . (the first time this downloads PyTorch and the rest: several minutes)"
	$(PY) -m pip install -e .

install-test:
	@echo "pip install -e .[test] (the first time: several minutes)"
	$(PY) -m pip install -e ".[test]"
	@command -v chromium >/dev/null || (echo "installing Debian's chromium for the browser tests" && \
		apt-get update && apt-get install -y chromium)

site: install
	$(PY) -m generator build

test: install-test
	$(PY) -m pytest -q

serve: install
	$(PY) -m generator build --serve
