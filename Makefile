# Two commands on a fresh machine: `make demo` and `make test`; each installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPROC ?= 2
SEED ?= 0
RECIPE ?= launch/configs/curriculum.yaml
MODELS ?= bg av cm rr tm
STAGES ?= 1 2 4
ARGS ?=
SAMPLE ?= data/sample
# albumentations otherwise checks PyPI for a newer version on import (a 2 s network timeout offline)
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install test test-profile test-fast demo bench tensorboard train-all-specialists sample-data clean

install: $(STAMP)

# Re-runs only when the package metadata changes, so a second `make install` takes a second.
# facenet-pytorch goes in with --no-deps: 2.5.3 is the last release without a torch<2.3 pin.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.5.3
	touch $@

# Two pytest-xdist workers, one per core; tests that share an expensive module fixture, and those that
# start two processes, stay together in an xdist group (tests/conftest.py).
TEST_WORKERS ?= 2
TEST_ARGS := -q -p no:cacheprovider --durations=15 -n $(TEST_WORKERS) --dist loadgroup
PROFILE ?= bench/results/test_profile.json

test: install
	$(PY) -m pytest $(TEST_ARGS)

# The same run, with per-test and per-fixture setup times written to $(PROFILE) (JSON) and summarised;
# `make test-profile PROFILE=new.json COMPARE=old.json` also compares two runs.
test-profile: install
	$(PY) bench/test_profile.py --json $(PROFILE) $(if $(COMPARE),--compare $(COMPARE),) -- $(TEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow"

sample-data: install
	$(PY) launch/make_sample_data.py --out $(SAMPLE)

demo: install
	$(PY) launch/demo.py --nproc $(NPROC) --seed $(SEED)

bench: install
	$(PY) bench/trainer_overhead.py
	$(PY) bench/models.py
	$(PY) bench/data_pipeline.py
	$(PY) bench/predict.py
	$(PY) bench/learnability.py --seeds 0 1 2 --json bench/results/learnability.json
	$(PY) bench/synthesis.py --strips docs/synthesis --json bench/results/synthesis.json
	$(PY) bench/synthetic_training.py --seeds 0 1 2 --json bench/results/synthetic_training.json
	$(PY) bench/cue_probes.py --seeds 0 1 2 --json bench/results/cue_probes.json --heatmap docs/cue_matrix.png

tensorboard: install
	$(VENV)/bin/tensorboard --logdir runs

# Every specialist through every stage of the curriculum, in order; finished stages are skipped,
# an interrupted one resumes where it stopped. Every model's recipe, stages and data roots are checked
# first (launch/train.py --check), so a missing root stops with one line before anything is launched.
train-all-specialists: install
	@for m in $(MODELS); do \
	  $(PY) launch/train.py --check --model $$m --stage $(STAGES) --config $(RECIPE) $(ARGS) || exit $$?; \
	done
	@for m in $(MODELS); do for s in $(STAGES); do \
	  $(VENV)/bin/accelerate launch --num_processes $(NPROC) $(if $(filter-out 1,$(NPROC)),--multi_gpu,) \
	    --num_machines 1 --dynamo_backend no --mixed_precision no \
	    launch/train.py --model $$m --stage $$s --config $(RECIPE) $(ARGS) || exit $$?; \
	done; done

clean:
	rm -rf runs .pytest_cache
