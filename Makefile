# Two commands: `make pretrain METHOD=genesis` and `make test`. The first use creates .venv.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; a GPU user sets TORCH, e.g.
#   make pretrain TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH ?= torch==2.13.0
METHOD ?= genesis
DATA ?=
ARGS ?=
TASK ?= classification
INIT ?= scratch
LABELS ?=
PYTEST_ARGS ?=
PROFILE ?= pneumoniamnist
WRITE ?=

STAMP := $(VENV)/.installed
# Dotted config keys given straight to make (`make pretrain METHOD=byol data.root=/data`) are
# make variables; pass them on to the CLI like ARGS.
CONFIG_OVERRIDES = $(foreach v,$(sort $(.VARIABLES)),$(if $(and $(findstring .,$(v)),$(filter command line,$(origin $(v)))),$(v)=$($(v))))

.PHONY: install pretrain finetune lint-imports test test-fast zoo-list benchmark benchmarks clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

pretrain: $(STAMP)
	$(PY) -m lightning_ssl pretrain $(strip method=$(METHOD) $(if $(DATA),data=$(DATA)) $(CONFIG_OVERRIDES) $(ARGS))

finetune: $(STAMP)
	$(PY) -m lightning_ssl finetune $(strip method.task=$(TASK) method.init=$(INIT) $(if $(DATA),data=$(DATA)) $(if $(LABELS),data.label_budget=$(LABELS)) $(CONFIG_OVERRIDES) $(ARGS))

# The layers of the package (setup.cfg [importlinter]) are checked before the tests.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports --no-logo --no-cache

# Everything, the slow end-to-end runs and the multi-process tests included (what CI runs), with the 15 slowest
# tests listed at the end (the whole must stay under 10 minutes).
test: lint-imports
	$(PY) -m pytest -n 2 --dist worksteal --durations=15 $(PYTEST_ARGS)

# The inner loop: every unit test, without full training runs and multi-process tests.
test-fast: lint-imports
	$(PY) -m pytest -n 2 --dist worksteal -m "not slow and not ddp" $(PYTEST_ARGS)

zoo-list: $(STAMP)
	$(PY) -m lightning_ssl zoo list

# The label-efficiency matrix of a profile (benchmarks/profiles/<PROFILE>.yaml): pretrains what the zoo lacks, then
# fine-tunes every init x budget x seed; ARGS adds options, e.g. ARGS="--resume" to continue a killed run.
# Reports go to results/local/ unless WRITE=1: then results/, the committed record, and the work folder is results/work/<PROFILE>,
# whose finished cells and small pretrained entries are committed too, so a long run goes on (--resume) in a later sitting.
benchmark: $(STAMP)
	$(PY) benchmarks/label_efficiency.py --profile $(PROFILE) $(if $(WRITE),--write) $(ARGS)

# Speed benchmarks; they refuse to run while another job loads the machine.
benchmarks: $(STAMP)
	$(PY) benchmarks/genesis_transforms.py $(if $(WRITE),--write)
	$(PY) benchmarks/pretrain_throughput.py $(if $(WRITE),--write)

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
