# The course's commands. `make course` sets everything up and runs every notebook;
# `make test` runs the unit tests, the notebook pairing check and strict nbval (fast mode).
# Inside an active virtual environment (or a conda env other than base) that environment is
# used; otherwise .venv.

ifdef VIRTUAL_ENV
  BIN := $(VIRTUAL_ENV)/bin/
else ifneq ($(filter-out base,$(CONDA_DEFAULT_ENV)),)
  BIN := $(CONDA_PREFIX)/bin/
else
  BIN := .venv/bin/
endif
PY := $(BIN)python
STAMP := $(BIN).course-installed

.PHONY: course test lab data notebooks bench install clean-cache exercises html pretrain badges

course: install data notebooks          ## set up, stage data, execute every notebook

test: install data                      ## unit tests + pairing check + strict nbval (fast mode)
	COURSE_FAST=1 $(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/sanitize.cfg

lab: install data                       ## JupyterLab on the repository (notebooks/, exercises/)
	$(BIN)jupyter lab

data: install                           ## fetch and verify the datasets (Kuzushiji-MNIST needs internet)
	$(PY) -m companion.data fetch all --allow-missing kmnist

notebooks: install                      ## execute every notebook (COURSE_FAST=1 for the quick run)
	$(PY) tools/nbtool.py execute

bench: install data                     ## the benchmarks, results in bench/results/
	$(PY) bench/pipeline.py
	$(PY) bench/conv.py

exercises: install                      ## learner copies in exercises/ (solutions stubbed, no outputs)
	$(PY) tools/exercises.py build

html: install                           ## the executed notebooks as web pages in site/ (index.html)
	$(PY) tools/render_html.py

pretrain: install data                  ## train and cache every model; time each notebook per mode
	$(PY) tools/pretrain.py

badges: install                         ## Colab/Binder badges from pyproject's Repository URL
	$(PY) tools/badges.py write
	$(PY) tools/exercises.py build

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -e '.[test]'
	@touch $@

clean-cache:                            ## forget trained models (they retrain on the next run)
	rm -rf data/checkpoints
