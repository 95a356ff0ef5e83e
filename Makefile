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
# The cell timeout is tools/notebooks.py's fast-mode limit (a test keeps the two equal).
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg \
	--nbval-cell-timeout=900
# make test's suite in two processes (pytest-xdist) of one thread each: two cores busy, none
# oversubscribed. tests/conftest.py keeps each notebook's cells on one worker, in order. The
# 15 slowest tests are listed at the end.
TESTS := OMP_NUM_THREADS=1 COURSE_FAST=1 $(PY) -m pytest -n 2 --durations=15 \
	tests notebooks $(NBVAL)
# The lowest releases pyproject.toml allows (a test keeps them in step), for `make test-floor`.
FLOOR := torch==2.3.0 torchvision==0.18.0 numpy==1.24.0
FLOOR_VENV := build/floor-venv
# JupyterLab will not start as root without --allow-root; containers and cloud workspaces are root.
AS_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
# Another machine's numerics, imitated on this one: ATen's plain (non-vector) kernels, MKL
# without AVX, one thread (another order of summation) and another training run of every model.
PERTURBED := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 OMP_NUM_THREADS=1 \
	MKL_NUM_THREADS=1 COURSE_SEED_OFFSET=1

.PHONY: course test lab data notebooks bench install clean-cache exercises html pretrain badges \
	test-floor test-perturbed course-offsets test-time doctor workshop-bundle test-postbuild

course: install data                    ## set up, stage data, run every notebook into build/notebooks/
	$(PY) tools/nbtool.py build

test: install data                      ## unit tests + pairing check + strict nbval (fast mode)
	$(PY) tools/system.py chromium
	$(TESTS)

test-time: install data                 ## make test's suite, timed: bench/results/test_time.json
	$(PY) tools/system.py chromium
	$(PY) tools/test_time.py env $(TESTS)

doctor: install                         ## the day before a workshop: is this machine ready? (no network)
	$(PY) -m companion doctor

lab: install                            ## JupyterLab on the repository (notebooks/, exercises/); no network
	$(if $(AS_ROOT),@echo "Running as root (a container or cloud workspace?): JupyterLab needs --allow-root there and gets it.")
	$(BIN)jupyter lab $(AS_ROOT)

test-perturbed: install data            ## strict nbval (fast mode) as another machine would run it
	$(PERTURBED) COURSE_FAST=1 $(PY) -m pytest notebooks $(NBVAL)

course-offsets: install data            ## every notebook in full mode, other training runs (offsets 1, 2)
	@status=0; for k in 1 2; do \
	  COURSE_SEED_OFFSET=$$k $(PY) tools/nbtool.py build --out build/offset-$$k || status=1; \
	done; exit $$status

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

workshop-bundle: install data           ## build/workshop-bundle/: wheels, data, models, exercises, pages
	$(PY) tools/bundle.py$(if $(TORCH_INDEX), --torch-index $(TORCH_INDEX))

test-postbuild:                         ## maintainer: postBuild (Binder, JupyterHub) in a fresh venv
	python3 tools/test_postbuild.py

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
	$(PY) -m companion lab-settings
	@touch $@

clean-cache:                            ## forget trained models (they retrain on the next run)
	rm -rf data/checkpoints
