# coredino-qgis: `make demo` and `make test` each set everything up on first use (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export YOLO_OFFLINE ?= 1
export YOLO_VERBOSE := False
export QT_QPA_PLATFORM := offscreen

.PHONY: install demo test bench clean

install:
	@VENV=$(VENV) bash tools/setup.sh

demo: install
	$(VENV)/bin/coredino classify resources/montevideo_0p25m_demo.tif -o out/demo_classes.tif --rgb
	$(VENV)/bin/coredino quicklook out/demo_classes.tif --source resources/montevideo_0p25m_demo.tif -o out/demo_quicklook.png
	@echo "open out/demo_classes.tif in QGIS (styled by out/demo_classes.qml) or look at out/demo_quicklook.png"

test: install
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
