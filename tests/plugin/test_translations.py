"""Strings go through tr(): the build's .ts template lists them by context, and a compiled
translation changes what the dialogs show."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "coredino_qgis" / "i18n" / "coredino_qgis.ts"


def template() -> ET.Element:
    subprocess.run([sys.executable, str(ROOT / "tools" / "ts_template.py")], check=True, capture_output=True)
    return ET.parse(TEMPLATE).getroot()


def test_template_lists_the_plugin_strings_by_context():
    root = template()
    sources = {(c.findtext("name"), m.findtext("source")) for c in root.iter("context") for m in c.iter("message")}
    assert ("SetupDialog", "Set up the coredino backend") in sources
    assert ("CoredinoDock", "Copy diagnostics") in sources
    assert ("SettingsDialog", "Test connection") in sources
    assert ("coredino", "about {} s left") in sources


@pytest.mark.skipif(shutil.which("lrelease") is None, reason="needs lrelease (Qt Linguist tools)")
def test_a_compiled_translation_is_shown(qgis_app, tmp_path):
    from coredino_qgis.setup_dialog import SetupDialog

    root = template()
    for message in root.iter("message"):
        if message.findtext("source") == "Set up the coredino backend":
            translation = message.find("translation")
            translation.text = "Backend von coredino einrichten"
            del translation.attrib["type"]
    ts, qm = tmp_path / "coredino_qgis_de.ts", tmp_path / "coredino_qgis_de.qm"
    ET.ElementTree(root).write(ts, encoding="utf-8", xml_declaration=True)
    subprocess.run(["lrelease", str(ts), "-qm", str(qm)], check=True, capture_output=True)
    translator = QTranslator()
    assert translator.load(str(qm))
    QCoreApplication.installTranslator(translator)
    try:
        dialog = SetupDialog()
        assert dialog.windowTitle() == "Backend von coredino einrichten"
        dialog.deleteLater()
    finally:
        QCoreApplication.removeTranslator(translator)
