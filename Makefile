# Set-up, tests and checks. A fresh machine needs only `make quickstart` and `make test`:
# both create the environment (.venv/) when it is missing or its requirements changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
REQS    := requirements/installer.txt requirements/base.txt requirements/nodeps.txt
UV      := $(VENV)/bin/uv
# DETECTRON2_SPEC: install your own Detectron2 build instead of the sal-detectron2 wheel, e.g.
#   make venv DETECTRON2_SPEC=/path/to/detectron2-checkout   (built against the pinned torch)
DETECTRON2_SPEC ?=
# The environment stamp is keyed on the requirement files (and DETECTRON2_SPEC): editing them
# re-runs the install.
ENV_KEY := $(shell (cat $(REQS); echo "$(DETECTRON2_SPEC)") | sha1sum | cut -c1-16)
STAMP   := $(VENV)/.stamp-$(ENV_KEY)
# The extension is rebuilt when its sources or setup.py change.
CSRC    := $(shell find mask2former/layers/csrc mask2former/utils/csrc -type f 2>/dev/null)
EXT     := $(VENV)/.ext-built
PYTEST_ARGS ?=

.PHONY: help venv build test quickstart quickstart-video cuda-check slurm-check bench clean distclean

help:
	@echo "make quickstart   create .venv if needed, then train+evaluate+demo a small model on synthetic data (CPU)"
	@echo "make quickstart-video   the same for video instance segmentation (synthetic YouTube-VIS clips)"
	@echo "make test         create .venv if needed, build the op, run the test suite"
	@echo "make cuda-check   compile the CUDA kernels with nvcc for sm_80/sm_90 (no GPU needed)"
	@echo "make slurm-check  multi-machine + preemption runs of tools/submit_slurm.py on a throwaway"
	@echo "                  single-host Slurm cluster (installs slurm-wlm and munge with apt if missing)"
	@echo "make venv         only create/update the environment in $(VENV)"
	@echo "make build        only (re)build the compiled op mask2former._C"

venv: $(STAMP)

$(STAMP): $(REQS)
	@set -e; \
	if [ ! -x $(PY) ]; then \
	  py=$$(PYTHON="$(PYTHON)" tools/find_python.sh); \
	  echo "creating $(VENV) with $$py"; \
	  "$$py" -m venv $(VENV); \
	fi
	$(PIP) install -q --upgrade -r requirements/installer.txt
	@set -e; if [ -n "$(DETECTRON2_SPEC)" ]; then \
	  grep -v '^sal-detectron2' requirements/base.txt > $(VENV)/requirements-own-d2.txt; \
	  $(UV) pip install --python $(PY) -r $(VENV)/requirements-own-d2.txt; \
	  $(UV) pip uninstall --python $(PY) sal-detectron2 >/dev/null 2>&1 || true; \
	  $(PIP) install --no-build-isolation "$(DETECTRON2_SPEC)"; \
	else \
	  $(UV) pip install --python $(PY) -r requirements/base.txt; \
	fi
	$(UV) pip install --python $(PY) --no-deps -r requirements/nodeps.txt
	rm -f $(VENV)/.stamp-* $(EXT)
	touch $@

build: $(EXT)

$(EXT): $(STAMP) setup.py $(CSRC)
	MASK2FORMER_BUILD_EXT=0 $(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) setup.py -q build_ext --inplace
	$(PY) -c "import mask2former.layers as L; print('mask2former op backends:', L.available_backends())"
	touch $@

test: build
	$(PY) -m pytest $(PYTEST_ARGS)

# The quick starts plan their schedule to end within their time budget counted from here
# (before the environment is created): QUICKSTART_T0 is the time make started.
QUICKSTART_T0 := $(shell date +%s)

quickstart: build
	QUICKSTART_T0=$(QUICKSTART_T0) $(PY) tools/quickstart.py

quickstart-video: build
	QUICKSTART_T0=$(QUICKSTART_T0) $(PY) tools/quickstart.py --video

cuda-check:
	tools/cuda_check.sh

slurm-check: build
	PY=$(abspath $(PY)) tools/slurm_check.sh

bench: build
	$(PY) tools/benchmark_ms_deform_attn.py

clean:
	rm -rf build mask2former/_C*.so mask2former/_allocator*.so $(EXT)

distclean: clean
	rm -rf $(VENV) .cuda-check-venv
