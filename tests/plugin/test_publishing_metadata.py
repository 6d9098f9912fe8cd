"""metadata.txt tells the truth and is ready for plugins.qgis.org (except what only maintainers supply)."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def general() -> configparser.SectionProxy:
    meta = configparser.ConfigParser(inline_comment_prefixes=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    return meta["general"]


def test_about_names_the_real_menu_and_every_algorithm(provider):
    from coredino_qgis.plugin import MENU

    about = general()["about"]
    assert f"Raster > {MENU.replace('&', '')}" in about  # the plugin adds its actions to the Raster menu
    algorithms = provider.algorithms()
    assert len(algorithms) == 9
    for algorithm in algorithms:
        assert algorithm.displayName() in about, algorithm.displayName()


def test_publishing_fields_are_present_and_left_to_the_maintainers():
    meta = general()
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "tags", "category"):
        assert meta[key].strip(), key
    for key in ("email", "homepage", "tracker", "repository"):  # no invented addresses
        assert key in meta and meta[key] == ""
    assert "; MAINTAINERS: homepage=" in (ROOT / "metadata.txt").read_text(encoding="utf-8")


def test_experimental_follows_the_release_state():
    meta = general()
    major = int(meta["version"].split(".")[0])
    assert meta["experimental"] == ("True" if major < 1 else "False")
