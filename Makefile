# interpgrad: the two commands of the README.
#   make run    install what the app needs into .venv, then start the Streamlit app on the shipped checkpoints
#   make test   install the app and the test tooling into .venv (and Chromium, as root), then run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
# The app listens on this machine only (the Train page starts processes and reads local folders);
# make run ADDRESS=0.0.0.0 lets other machines reach it.
ADDRESS ?= 127.0.0.1

.PHONY: run test test-fast install install-dev system-deps checkpoints gad-runs starter-evaluation clean

$(VENV)/.runtime-installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "interpgrad needs Python 3.10 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt requirements-quantus.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-quantus.txt
	touch $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

run: install
	$(BIN)/python -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

# The browser tests drive the system Chromium; install it when it is missing and we may (root).
system-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "the browser tests need Chromium at /usr/bin/chromium: sudo apt-get install -y chromium"; exit 1; fi; \
	fi

test: install-dev system-deps
	$(BIN)/python -m pytest

test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow and not browser"

# The shipped starter checkpoints: a small CIFAR-style ResNet-18 (width 0.25) trained on shapes, baseline and guided
# alignment (cosine, lambda 7.5e-3). About 4 + 9 minutes on 2 CPU cores; deterministic for the seed.
STARTER_FILES := model.safetensors model.json metrics.jsonl config.json
checkpoints: install
	rm -rf build/starter
	$(BIN)/python -m interpgrad train --preset shapes-cpu --seed 0 --regularizer none --out build/starter/baseline
	$(BIN)/python -m interpgrad train --preset shapes-cpu --seed 0 --regularizer guided --error cosine --lam 7.5e-3 \
	    --out build/starter/guided
	for kind in baseline guided; do \
	  mkdir -p checkpoints/shapes-resnet18-$$kind && \
	  for file in $(STARTER_FILES); do cp build/starter/$$kind/$$file checkpoints/shapes-resnet18-$$kind/; done; \
	done
	$(MAKE) gad-runs

# The shipped GAD runs (our reading of GAD, PAPERS.md section 2) of the two starter checkpoints on the pair of shapes
# classes they confuse most, square vs heart (validation set: baseline 4, guided 9 of 2,000 images): 3 support models
# each (the default settings; about 1 minute on 2 CPU cores), then their regions over the first 500 validation images
# of the two classes, of which shapes has 400 (Integrated Gradients; about 3 minutes each on one CPU core). Each lands
# in checkpoints/gad/<run> with the explain outputs in <run>/study/ (the GAD & regions page reads them).
GAD_PAIR := square,heart
GAD_RUN_FILES := config.json status.json support-1.json support-1.safetensors support-2.json support-2.safetensors \
	support-3.json support-3.safetensors
GAD_STUDY_PNGS := 4
gad-runs: install
	for kind in baseline guided; do \
	  run=shapes-resnet18-$$kind-square-heart && rm -rf build/gad/$$run build/gad/study-$$kind && \
	  $(BIN)/python -m interpgrad gad train --checkpoint checkpoints/shapes-resnet18-$$kind --classes $(GAD_PAIR) \
	      --device cpu --out build/gad/$$run && \
	  $(BIN)/python -m interpgrad gad explain --run build/gad/$$run --dataset-sample --n 500 \
	      --out build/gad/study-$$kind && \
	  rm -rf checkpoints/gad/$$run && mkdir -p checkpoints/gad/$$run/study && \
	  for file in $(GAD_RUN_FILES); do cp build/gad/$$run/$$file checkpoints/gad/$$run/; done && \
	  cp build/gad/study-$$kind/regions.csv build/gad/study-$$kind/summary.csv checkpoints/gad/$$run/study/ && \
	  ls build/gad/study-$$kind/*.png | sort -V | head -n $(GAD_STUDY_PNGS) | \
	      xargs -I{} cp {} checkpoints/gad/$$run/study/ \
	  || exit 1; \
	done

# The evaluation of the two starter checkpoints shipped in checkpoints/evaluations/shapes-starter (the Evaluate page
# opens on it): every method (the controls last), every metric, the first 1,000 shapes validation images, on the CPU.
# The per-image table is shipped compressed (results.csv.gz, 450,000 rows); the resume log (units.jsonl) is not.
STARTER_EVALUATION := checkpoints/evaluations/shapes-starter
STARTER_EVALUATION_FILES := config.json status.json results.json summary.csv comparisons.csv method_comparisons.csv curves.csv plots
starter-evaluation: install
	rm -rf build/starter-evaluation
	$(BIN)/python -m interpgrad evaluate --checkpoint checkpoints/shapes-resnet18-baseline \
	    --checkpoint checkpoints/shapes-resnet18-guided --methods all --metrics all --dataset shapes --split val \
	    --n 1000 --device cpu --out build/starter-evaluation
	rm -rf $(STARTER_EVALUATION) && mkdir -p $(STARTER_EVALUATION)
	cd build/starter-evaluation && cp -r $(STARTER_EVALUATION_FILES) $(CURDIR)/$(STARTER_EVALUATION)/
	gzip -9 -n -c build/starter-evaluation/results.csv > $(STARTER_EVALUATION)/results.csv.gz

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
