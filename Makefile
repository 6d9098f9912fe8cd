# coredino-qgis: `make demo` and `make test` each set everything up on first use (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export YOLO_OFFLINE ?= 1
export YOLO_VERBOSE := False
export QT_QPA_PLATFORM := offscreen

.PHONY: install vendor demo test eval bench clean package dist offline-bundle translations

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
	  --weights "current default=backend/coredino/resources/coredino-n-default.pt" -o out/eval

clean:
	rm -rf out .pytest_cache

# QGIS plugin zip: dist/coredino_qgis-<version>.zip holding coredino_qgis/ with metadata.txt inside
# (the layout of Plugins > Manage and Install Plugins > Install from ZIP); no __pycache__; with
# constraints.txt and the demo image, which the backend set-up dialog uses.
PLUGIN_VERSION = $(shell sed -n 's/^version=//p' metadata.txt)
PLUGIN_STAGE := build/plugin-package
# the translation template coredino_qgis/i18n/coredino_qgis.ts (not in git; tools/ts_template.py)
translations:
	@python3 tools/ts_template.py

package: vendor translations
	@rm -rf $(PLUGIN_STAGE) && mkdir -p $(PLUGIN_STAGE) dist
	@cp -r coredino_qgis $(PLUGIN_STAGE)/coredino_qgis && cp metadata.txt $(PLUGIN_STAGE)/coredino_qgis/metadata.txt
	@# the set-up dialog's pins and its verification image (coredino_qgis/backend_env.py: shipped_file)
	@cp constraints.txt resources/montevideo_0p25m_demo.tif $(PLUGIN_STAGE)/coredino_qgis/
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

# The backend as a wheel: $(DIST_DIR)/coredino-<version>-py3-none-any.whl (packages coredino and
# coredino_contract, the `coredino` command, the default weights and codebook as package data).
# Built offline from this checkout (setuptools of the venv, no build isolation).
DIST_DIR ?= dist
dist: vendor
	@mkdir -p $(DIST_DIR)
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w $(DIST_DIR) .
	@rm -rf build backend/*.egg-info
	@ls $(DIST_DIR)/coredino-*.whl

# Everything an air-gapped machine needs to install the backend (docs/install.md): the backend
# wheel and every dependency's wheel for THIS platform and Python, pinned by constraints.txt, in
# dist/offline-<platform>/ with requirements.txt. torch and its CUDA libraries make it several GB.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu gives a CPU-only torch (about 1 GB less).
OFFLINE_DIR ?= dist/offline-$(shell $(PY) -c "import sysconfig; print(sysconfig.get_platform().replace('-', '_').replace('.', '_'))")-py$(shell $(PY) -c "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')")
offline-bundle: dist
	$(PY) tools/offline_bundle.py --wheel-dir $(DIST_DIR) --out $(OFFLINE_DIR) $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX))
