# coredino-qgis: `make demo` and `make test` each set everything up on first use (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export YOLO_OFFLINE ?= 1
export YOLO_VERBOSE := False
export QT_QPA_PLATFORM := offscreen

.PHONY: install vendor demo test eval bench clean package

install: vendor
	@VENV=$(VENV) bash tools/setup.sh

# the plugin's copy of the contract (coredino_qgis/contract, not in git; see tools/vendor_contract.py)
vendor:
	@python3 tools/vendor_contract.py

demo: install
	$(VENV)/bin/coredino classify resources/montevideo_0p25m_demo.tif -o out/demo_classes.tif --rgb
	$(VENV)/bin/coredino quicklook out/demo_classes.tif --source resources/montevideo_0p25m_demo.tif -o out/demo_quicklook.png
	@echo "open out/demo_classes.tif in QGIS (styled by out/demo_classes.qml) or look at out/demo_quicklook.png"

test: install
	$(PY) -m pytest -q

# The rotating held-out evaluation of the bundled model beside the colour-only, random-init and
# ImageNet baselines (docs/training.md; not part of `make test`): out/eval/eval.md and eval.json.
# Needs the labelled development set in ../shared/data/labelled; about 15 min on 2 shared cores
# (one thread: on a busy machine torch's and faiss's spinning threads cost 10x).
EVAL_THREADS ?= 1
eval: install
	OMP_NUM_THREADS=$(EVAL_THREADS) $(PY) -m coredino.cli eval --threads $(EVAL_THREADS) \
	  --weights "current default=resources/coredino-n-default.pt" -o out/eval

clean:
	rm -rf out .pytest_cache

# QGIS plugin zip: dist/coredino_qgis-<version>.zip holding coredino_qgis/ with metadata.txt inside
# (the layout of Plugins > Manage and Install Plugins > Install from ZIP); no __pycache__.
PLUGIN_VERSION = $(shell sed -n 's/^version=//p' metadata.txt)
PLUGIN_STAGE := build/plugin-package
package: vendor
	@rm -rf $(PLUGIN_STAGE) && mkdir -p $(PLUGIN_STAGE) dist
	@cp -r coredino_qgis $(PLUGIN_STAGE)/coredino_qgis && cp metadata.txt $(PLUGIN_STAGE)/coredino_qgis/metadata.txt
	@find $(PLUGIN_STAGE) \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
	@rm -f dist/coredino_qgis-$(PLUGIN_VERSION).zip
	@cd $(PLUGIN_STAGE) && python3 -c "import shutil; shutil.make_archive('$(CURDIR)/dist/coredino_qgis-$(PLUGIN_VERSION)', 'zip', '.', 'coredino_qgis')"
	@rm -rf $(PLUGIN_STAGE) && rmdir build 2>/dev/null || true
	@echo "dist/coredino_qgis-$(PLUGIN_VERSION).zip: in QGIS, Plugins > Manage and Install Plugins > Install from ZIP"

# Benchmarks (docs/benchmarks.md): the engine against the reference pipeline, K-means and t-SNE at
# codebook scale, memory and time on big mostly-empty mosaics. CPU: about 10 minutes; on a GPU the
# scripts pick CUDA and GPU sizes (4M x 768 K-means, batch 256).
bench: install
	$(PY) bench/pipeline.py
	$(PY) bench/kmeans.py --tsne
	$(PY) bench/memory.py
