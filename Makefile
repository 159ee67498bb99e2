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

.PHONY: run test test-fast install install-dev system-deps checkpoints zoo-checkpoints lab-checkpoints lab-cache gad-runs \
	starter-evaluation strong-evaluation clean

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
	$(MAKE) zoo-checkpoints lab-checkpoints gad-runs strong-evaluation

# ship(run folder, name): copy a finished run's checkpoint files into checkpoints/<name>
define ship
	rm -rf checkpoints/$(2) && mkdir -p checkpoints/$(2) && \
	for file in $(STARTER_FILES); do cp $(1)/$$file checkpoints/$(2)/ || exit 1; done
endef

# The zoo beside the starter pair. A CIFAR-style MobileNet-V2 (width 0.5) baseline trained like the starter models
# (it is also the Gradient lab's GAN-test judge: another architecture, trained independently), and the regularizer
# study's strongest setting within 1 point of accuracy over 3 seeds (studies/regularizer: the guided regularizer with
# batch-norm statistics held constant in the gradient pass, the loss's gradients, lambda 0.5; lambda 1 cost 1.45
# points), fine-tuned from each baseline exactly as in the study.
FINE_TUNE := --preset shapes-cpu --optimizer adam --lr 1e-4 --schedule constant --warmup-epochs 0 --epochs 3 \
	--n-train 2560 --alignment-samples 512 --seed 0 --device cpu --threads 1
STRONG := --regularizer guided --error cosine --lam 0.5 --batchnorm per_sample --gradient-of loss
MOBILENET := --arch mobilenet_v2 --width 0.5
zoo-checkpoints: install
	rm -rf build/zoo
	$(BIN)/python -m interpgrad train --preset shapes-cpu $(MOBILENET) --seed 0 --threads 1 --regularizer none \
	    --out build/zoo/shapes-mobilenetv2-baseline
	$(call ship,build/zoo/shapes-mobilenetv2-baseline,shapes-mobilenetv2-baseline)
	$(BIN)/python -m interpgrad train $(FINE_TUNE) --init checkpoints/shapes-resnet18-baseline $(STRONG) \
	    --out build/zoo/shapes-resnet18-guided-strong
	$(call ship,build/zoo/shapes-resnet18-guided-strong,shapes-resnet18-guided-strong)
	$(BIN)/python -m interpgrad train $(FINE_TUNE) $(MOBILENET) --init checkpoints/shapes-mobilenetv2-baseline \
	    $(STRONG) --out build/zoo/shapes-mobilenetv2-guided-strong
	$(call ship,build/zoo/shapes-mobilenetv2-guided-strong,shapes-mobilenetv2-guided-strong)

# The Gradient lab's models (Srinivas & Fleuret's setting: every ReLU a Softplus(10), inputs in [0, 1], their
# regularizers at the paper's lambdas), trained from scratch like the starter models: a baseline, gradient norm,
# anti-score-matching and score matching; then the baseline fine-tuned so that its logit gradients show the text "HI"
# (the gradient_pattern regularizer, cosine error, lambda 10, Adam 1e-3, batch-norm statistics held constant in the
# gradient pass; the gentler settings tried left the cosine at 0.00: README, "Gradient lab").
LAB_TRAIN := --preset shapes-cpu --seed 0 --threads 1 --activation softplus --normalize false
LAB_MODELS := baseline:none gradient-norm:gradient_norm anti-score-matching:anti_score_matching \
	score-matching:score_matching
lab-checkpoints: install
	rm -rf build/lab
	for pair in $(LAB_MODELS); do \
	  name=shapes-resnet18-softplus-$${pair%%:*} && \
	  $(BIN)/python -m interpgrad train $(LAB_TRAIN) --regularizer $${pair##*:} --out build/lab/$$name && \
	  $(call ship,build/lab/$$name,$$name) || exit 1; \
	done
	$(BIN)/python -m interpgrad lab fool --checkpoint checkpoints/shapes-resnet18-softplus-baseline --pattern text:HI \
	    --lam 10 --lr 1e-3 --epochs 3 --n-train 2560 --device cpu --out build/lab/shapes-resnet18-softplus-fooled
	$(call ship,build/lab/shapes-resnet18-softplus-fooled,shapes-resnet18-softplus-fooled)
	$(MAKE) lab-cache

# The Gradient lab page's results for the shipped Softplus models (class samples, GAN-test, density-ratio profiles,
# pixel-perturbation curves), computed with the page's settings into each checkpoint's lab/ folder.
lab-cache: install
	$(BIN)/python -m appkit.lab_cache

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

# The evaluation of the zoo shipped in checkpoints/evaluations/shapes-strong (the home page and the Models page read
# it): the ResNet-18 baseline, paper setting and strong models and the MobileNet-V2 baseline and strong model, paired
# on the first 200 shapes validation images, the gradients, Grad-CAM and the random control, the headline metrics.
STRONG_EVALUATION := checkpoints/evaluations/shapes-strong
STRONG_MODELS := shapes-resnet18-baseline shapes-resnet18-guided shapes-resnet18-guided-strong \
	shapes-mobilenetv2-baseline shapes-mobilenetv2-guided-strong
strong-evaluation: install
	rm -rf build/strong-evaluation
	$(BIN)/python -m interpgrad evaluate $(foreach model,$(STRONG_MODELS),--checkpoint checkpoints/$(model)) \
	    --methods gradient,guided_backprop,gradcam,random \
	    --metrics energy_pointing_game,pointing_game,insertion,deletion,average_drop,average_increase,sparseness \
	    --dataset shapes --split val --n 200 --device cpu --out build/strong-evaluation
	rm -rf $(STRONG_EVALUATION) && mkdir -p $(STRONG_EVALUATION)
	cd build/strong-evaluation && cp -r $(STARTER_EVALUATION_FILES) $(CURDIR)/$(STRONG_EVALUATION)/
	gzip -9 -n -c build/strong-evaluation/results.csv > $(STRONG_EVALUATION)/results.csv.gz

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
