# Two commands: `make run` and `make test`. Both create/refresh the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test bench openapi clean

venv: $(STAMP)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# PyTorch is optional (cross-check tests and benchmark peers); skipped cleanly when absent.
	-$(PY) -m pip install --quiet 'torch==2.13.0' >/dev/null 2>&1 || echo "torch not installed: PyTorch cross-checks will be skipped"
	touch $(STAMP)

run: venv
	$(VENV)/bin/needle-service serve

test: venv
	$(PY) -m pytest -q -p no:cacheprovider tests api_tests

openapi: venv
	$(VENV)/bin/needle-service openapi

bench: venv
	@# the BLAS kernel numpy would pick on a user's machine (see bench/needle_mlp_resnet.py)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) bench/needle_mlp_resnet.py

clean:
	rm -rf $(VENV)
