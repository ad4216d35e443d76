# Two commands: `make run` (the default main job) and `make test` (the whole suite).
# Both create .venv on first use; nothing needs to be installed by hand beyond python3 and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned: 2.13.0 is the CPU wheel this kind of machine has on disk;
# letting the resolver pick torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test venv clean

$(STAMP): pyproject.toml examples/rmroute-example-router/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e examples/rmroute-example-router
	touch $(STAMP)

venv: $(STAMP)

# The default main job: data, CPU RM pool, offline router per fold, every router x 5 seeds (folds) x
# 6 scenarios, then the prior ablation grid (replays only), results/ and the leaderboard. Caches live
# in $RMROUTE_CACHE (default ~/.cache/rmroute); a second run reuses them. RUN_ARGS=--resume continues
# a killed run.
run: $(STAMP)
	$(BIN)/rmroute validate configs/quickstart.yaml
	$(BIN)/rmroute validate configs/ablation-prior.yaml
	$(BIN)/rmroute run configs/quickstart.yaml $(RUN_ARGS)
	$(BIN)/rmroute run configs/ablation-prior.yaml $(RUN_ARGS)

test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q tests examples/rmroute-example-router/tests

clean:
	rm -rf $(VENV) .pytest_cache
