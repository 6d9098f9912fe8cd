"""Rasters named by a STAC document: an item, a collection, a catalog or an item collection.

Each item contributes its RGB image: the asset keyed or with the role ``visual``, else the one
whose bands are red, green and blue, else one keyed ``rgb`` or ``image``. Hrefs are resolved
against the document's own address and turned into GDAL paths (``https://`` -> ``/vsicurl/``,
``s3://`` -> ``/vsis3/``, ``gs://`` -> ``/vsigs/``, ``az://`` -> ``/vsiaz/``), so the pixels are
read in place, by range requests.
"""

from __future__ import annotations

import json
import posixpath
from typing import Iterator
from urllib.parse import urljoin

from .errors import UserError
from .storage import read_bytes

_SCHEMES = {"s3://": "/vsis3/", "gs://": "/vsigs/", "az://": "/vsiaz/", "http://": "/vsicurl/http://",
            "https://": "/vsicurl/https://"}
_MAX_DOCUMENTS = 100_000  # links followed through catalogs and collections


def is_stac(path: str) -> bool:
    """A STAC document path or URL (a ``.json`` file)."""
    return str(path).lower().split("?")[0].endswith(".json")


def stac_rasters(location: str) -> list[tuple[str, str]]:
    """(GDAL path of the RGB asset, ``<item id>.tif``) of every item reachable from ``location``."""
    found = list(_items(location))
    if not found:
        raise UserError(f"{location}: a STAC document without items; give an item, a collection "
                        f"or a catalog that links to items")
    return [(_rgb_asset(item, base), f"{item.get('id', 'item')}.tif") for item, base in found]


def stac_raster(location: str) -> str:
    """The GDAL path of the RGB asset of the one item ``location`` names."""
    rasters = stac_rasters(location)
    if len(rasters) != 1:
        raise UserError(f"{location}: names {len(rasters)} items; classify one item, or use "
                        f"`coredino batch` for a collection or catalog")
    return rasters[0][0]


def _read(location: str) -> dict:
    try:
        return json.loads(read_bytes(location))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{location}: not a JSON STAC document") from None


def _items(location: str) -> Iterator[tuple[dict, str]]:
    """(item, its address) for every item below ``location``, depth first."""
    todo, seen = [location], set()
    while todo:
        where = todo.pop()
        if where in seen:
            continue
        seen.add(where)
        if len(seen) > _MAX_DOCUMENTS:
            raise UserError(f"{location}: more than {_MAX_DOCUMENTS} STAC documents; split the catalog")
        doc = _read(where)
        kind = doc.get("type")
        if kind == "Feature":
            yield doc, where
        elif kind == "FeatureCollection":
            yield from ((item, where) for item in doc.get("features", []))
        elif kind in ("Collection", "Catalog"):
            links = [link for link in doc.get("links", []) if link.get("rel") in ("item", "child")]
            todo.extend(_resolve(link["href"], where) for link in reversed(links))
        else:
            raise UserError(f"{where}: not a STAC item, collection or catalog (type {kind!r})")


def _rgb_asset(item: dict, base: str) -> str:
    assets = item.get("assets", {})

    def rgb(asset: dict) -> bool:
        bands = asset.get("eo:bands") or asset.get("bands") or []
        names = [b.get("common_name") or b.get("eo:common_name") for b in bands]
        return names[:3] == ["red", "green", "blue"]

    for test in (lambda k, a: k == "visual" or "visual" in a.get("roles", []),
                 lambda k, a: rgb(a), lambda k, a: k in ("rgb", "image")):
        for key, asset in assets.items():
            if test(key, asset):
                return gdal_path(_resolve(asset["href"], base))
    raise UserError(f"{base}: item {item.get('id')!r} has no 'visual' or RGB asset (assets: "
                    f"{', '.join(assets) or 'none'}); add one or classify the asset's file directly")


def _resolve(href: str, base: str) -> str:
    """``href`` made absolute against the address of the document holding it."""
    if "://" in href or href.startswith("/"):
        return href
    if "://" in base:
        return urljoin(base, href)
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), href))


def gdal_path(href: str) -> str:
    """A URL or path as GDAL opens it."""
    for scheme, prefix in _SCHEMES.items():
        if href.startswith(scheme):
            return prefix + href[len(scheme):]
    return href
