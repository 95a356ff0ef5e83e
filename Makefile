# The course's commands. `make course` sets everything up and runs every notebook into
# build/notebooks/ (with a web page of each); `make test` runs the unit tests, the notebook
# pairing check and strict nbval (fast mode). Both leave the tracked files as they are.
# Inside an active virtual environment (or a conda env other than base) that environment is
# used; otherwise .venv. README's "Without make" lists the same commands for a shell without
# make (a test keeps the two in step).

ifdef VIRTUAL_ENV
  BIN := $(VIRTUAL_ENV)/bin/
else ifneq ($(filter-out base,$(CONDA_DEFAULT_ENV)),)
  BIN := $(CONDA_PREFIX)/bin/
else
  BIN := .venv/bin/
endif
PY := $(BIN)python
STAMP := $(BIN).course-installed
# Where pip may also look for PyTorch, e.g. https://download.pytorch.org/whl/cpu for the
# CPU-only build (PyPI's Linux wheel is a CUDA build of several GB).
TORCH_INDEX ?=
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg
# The lowest releases pyproject.toml allows (a test keeps them in step), for `make test-floor`.
FLOOR := torch==2.3.0 torchvision==0.18.0 numpy==1.24.0
FLOOR_VENV := build/floor-venv

.PHONY: course test lab data notebooks bench install clean-cache exercises html pretrain badges \
	test-floor

course: install data                    ## set up, stage data, run every notebook into build/notebooks/
	$(PY) tools/nbtool.py build

test: install data                      ## unit tests + pairing check + strict nbval (fast mode)
	$(PY) tools/system.py chromium
	COURSE_FAST=1 $(PY) -m pytest tests notebooks $(NBVAL)

lab: install data                       ## JupyterLab on the repository (notebooks/, exercises/)
	$(BIN)jupyter lab

data: install                           ## fetch and verify the datasets (Kuzushiji-MNIST needs internet)
	$(PY) tools/system.py dataset-fashion-mnist
	$(PY) -m companion.data fetch all

notebooks: install                      ## maintainer: re-execute the tracked notebooks, store outputs
	$(PY) tools/nbtool.py execute

bench: install data                     ## the benchmarks, results in bench/results/
	$(PY) bench/pipeline.py
	$(PY) bench/conv.py

exercises: install                      ## learner copies in exercises/ (solutions stubbed, no outputs)
	$(PY) tools/exercises.py build

html: install                           ## the tracked notebooks' stored outputs as web pages in site/
	$(PY) tools/render_html.py

pretrain: install data                  ## train and cache every model; time each notebook per mode
	$(PY) tools/pretrain.py

badges: install                         ## Colab/Binder badges from pyproject's Repository URL
	$(PY) tools/badges.py write
	$(PY) tools/exercises.py build

test-floor:                             ## maintainer: unit tests on the lowest allowed torch/numpy
	python3 -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install -e ".[test]" $(FLOOR)
	$(FLOOR_VENV)/bin/python -m pytest tests -m "not browser" -q

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -e ".[test]"$(if $(TORCH_INDEX), --extra-index-url $(TORCH_INDEX))
	@touch $@

clean-cache:                            ## forget trained models (they retrain on the next run)
	rm -rf data/checkpoints
