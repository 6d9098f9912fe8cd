"""Named, trusted models and codebooks: their files (URLs, sha256), licences, GSD and recipe.

Files live in ``<cache>/catalogue/<name>/``. A file with a pinned sha256 must match it; one without
gets its sha256 recorded (``SHA256SUMS`` in that folder) when first downloaded or imported, and a
later copy must match the record. ``--codebook NAME`` and ``--model NAME`` accept the names.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from coredino_contract.protocol import cache_dir

from .download import DownloadFailed, Offline, download, sha256_file
from .encoders import ModelSpec
from .encoders.weights import COREDINO_UPSTREAM_URL
from .errors import UserError
from .progress import Progress

GEOCENTROIDS_RAW = "https://github.com/aliaksandr960/dinov2_geocentroids_southamerica/raw/main/"
DINOV2_REG_BASE = "https://huggingface.co/facebook/dinov2-with-registers-base/resolve/main/"
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # inside the entry's folder
    url: str
    sha256: Optional[str] = None  # pinned; None: recorded on first download or import


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    license: str
    gsd: float
    recipe: str
    sources: tuple[str, ...]
    files: tuple[RemoteFile, ...] = ()
    codebook: str = "fit"  # bundled | import (geocentroids recipe) | fit (by the user)

    @property
    def non_commercial(self) -> bool:
        return "NC" in self.license.split(" (")[0]


ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("default", "core-dino n trained by this project, with its 6000-cluster codebook (bundled)",
          "GPL-2.0-or-later (this project; trained on OpenAerialMap imagery, CC BY 4.0)", 0.25,
          "core-dino:n layer 16 (2 m cells), 384 px tiles, 6-patch border, cosine, k 6000",
          ("resources/coredino-n-default.pt", "resources/coredino-n-default.codebook.npz"),
          codebook="bundled"),
    Entry("geocentroids-sa", "DINOv2-with-registers-base + the 6144 South-America geocentroids",
          "Apache-2.0 (DINOv2 weights) + MIT (centroids, colours); fitted on OpenAerialMap "
          "imagery, CC BY 4.0", 0.25,
          "geocentroids: HF processor (resize 256 bicubic, crop 224), 224 px tiles every 140 px, "
          "float16 patch tokens, inner product, k 6144, 7 px (1.75 m) cells at true positions",
          ("https://github.com/aliaksandr960/dinov2_geocentroids_southamerica",
           "https://huggingface.co/facebook/dinov2-with-registers-base"),
          (RemoteFile("centroids_6k.npy", GEOCENTROIDS_RAW + "centroids_6k.npy"),
           RemoteFile("color_map_rgb_6k.npy", GEOCENTROIDS_RAW + "color_map_rgb_6k.npy",
                      "cda5b5e30ff51b4361b389307fc657e0e806b84cd62c302764a604b1882028ed"),
           RemoteFile("dinov2-with-registers-base/config.json", DINOV2_REG_BASE + "config.json"),
           RemoteFile("dinov2-with-registers-base/model.safetensors",
                      DINOV2_REG_BASE + "model.safetensors")),
          codebook="import"),
    Entry("core-dino-x", "upstream core-dino YOLO11-x student (48 GPU-hours); codebook fitted by you",
          "CC BY-NC 3.0 (non-commercial use only)", 0.3,
          "core-dino:x layer 16 (8 px cells), 384 px tiles, 6-patch border; no published "
          "codebook: `coredino cluster` or `fit-codebook --model core-dino-x`",
          ("https://huggingface.co/gajeshladhar/core-dino",),
          (RemoteFile("student.pt", COREDINO_UPSTREAM_URL),)),
)}


def entry(name: str) -> Entry:
    if name not in ENTRIES:
        raise UserError(f"no catalogue entry {name!r}; known: {', '.join(ENTRIES)} (`coredino info`)")
    return ENTRIES[name]


def folder(name: str) -> Path:
    return cache_dir() / "catalogue" / name


def _sums(name: str) -> dict[str, str]:
    path = folder(name) / SUMS
    if not path.is_file():
        return {}
    return {rel: sha for sha, rel in (line.split(None, 1) for line in path.read_text().splitlines() if line)}


def _expected(name: str, f: RemoteFile) -> Optional[str]:
    return f.sha256 or _sums(name).get(f.path)


def _record(name: str, f: RemoteFile, digest: str) -> None:
    sums = _sums(name)
    sums[f.path] = digest
    (folder(name) / SUMS).write_text("".join(f"{sha}  {rel}\n" for rel, sha in sorted(sums.items())))


def missing(e: Entry) -> list[RemoteFile]:
    return [f for f in e.files if not (folder(e.name) / f.path).is_file()]


def _instruction(e: Entry, f: RemoteFile, why: str) -> UserError:
    target = folder(e.name) / f.path
    more = len(missing(e)) - 1
    rest = f" (and {more} more file{'s' * (more > 1)}: `coredino info` lists them)" if more > 0 else ""
    return UserError(f"{e.name} needs {f.path}{rest}, which is not in {folder(e.name)} ({why}): "
                     f"download {f.url} to {target}, or put the files in a folder DIR and run "
                     f"`coredino fetch {e.name} --from DIR`")


def ensure(name: str, progress: Optional[Progress] = None) -> Path:
    """The entry's folder with every file present and verified (downloaded when missing)."""
    e = entry(name)
    for f in missing(e):
        target = folder(name) / f.path
        try:
            digest = download(f.url, target, _expected(name, f), progress)
        except Offline:
            raise _instruction(e, f, "the network is off: COREDINO_OFFLINE is set") from None
        except DownloadFailed as exc:
            raise _instruction(e, f, f"the download failed: {exc.reason}") from None
        if not f.sha256:
            _record(name, f, digest)
    return folder(name)


def fetch(name: str, source: Optional[str] = None, progress: Optional[Progress] = None) -> list[Path]:
    """Download the entry's files, or copy them from the folder ``source`` (checked the same way)."""
    e = entry(name)
    if source is None:
        ensure(name, progress)
        return [folder(name) / f.path for f in e.files]
    src = Path(source)
    if not src.is_dir():
        raise UserError(f"{source}: not a folder; pass the folder holding {', '.join(f.path for f in e.files)}")
    absent = []
    for f in e.files:
        found = next((p for p in (src / f.path, src / Path(f.path).name) if p.is_file()), None)
        if found is None:
            if not (folder(name) / f.path).is_file():
                absent.append(f.path)
            continue
        _import(name, f, found)
    if absent:
        raise UserError(f"{source}: lacks {', '.join(absent)} for {name}; put them there (from "
                        f"{', '.join(f.url for f in e.files if f.path in absent)}) and run again")
    return [folder(name) / f.path for f in e.files]


def _import(name: str, f: RemoteFile, found: Path) -> None:
    digest, expected = sha256_file(found), _expected(name, f)
    if expected and digest != expected:
        how = "pinned" if f.sha256 else f"recorded in {folder(name) / SUMS}"
        again = "" if f.sha256 else f"; or delete {folder(name)} to start over"
        raise UserError(f"{found}: sha256 {digest[:16]}... differs from the {how} {expected[:16]}... "
                        f"for {name}'s {f.path}; it is not that file (the original: {f.url}){again}")
    target = folder(name) / f.path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(found, tmp)
    os.replace(tmp, target)
    if not f.sha256:
        _record(name, f, digest)


def codebook_path(name: str, progress: Optional[Progress] = None) -> Path:
    """The entry's codebook file: bundled, built from its published files, or an error saying how
    to fit one."""
    e = entry(name)
    if e.codebook == "bundled":
        from .engine import DEFAULT_CODEBOOK
        return DEFAULT_CODEBOOK
    if e.codebook == "fit":
        raise UserError(f"{name} has no published codebook: fit one on your rasters with `coredino "
                        f"cluster INPUT -o OUT.tif --model {name} --k 24` (it saves "
                        f"OUT.codebook.npz) and pass that file to --codebook")
    root = ensure(name, progress)
    book = root / f"{name}.codebook.npz"
    if not book.is_file():
        from .codebook.importer import import_codebook
        import_codebook(str(root / e.files[0].path), str(root / e.files[1].path), "geocentroids",
                        str(book), variant=str(root / Path(e.files[2].path).parent))
    return book


def model_spec(name: str) -> ModelSpec:
    """What ``--model NAME`` builds (files fetched as needed)."""
    e = entry(name)
    if name == "core-dino-x":
        return ModelSpec("core-dino", "x", COREDINO_UPSTREAM_URL, 16)
    if e.codebook == "import":
        return ModelSpec("dinov2-processor", str(ensure(name) / Path(e.files[2].path).parent), "", None)
    from .engine import RESOURCES
    return ModelSpec("core-dino", "n", str(RESOURCES / "coredino-n-default.pt"), 16)


def catalogue_file(url: str) -> Optional[Path]:
    """The verified local copy of a file the catalogue lists by ``url`` (fetched if needed), else None."""
    for e in ENTRIES.values():
        for f in e.files:
            if f.url == url:
                ensure(e.name)
                return folder(e.name) / f.path
    return None


def license_for(recipe: dict) -> str:
    """The licence of the model a codebook's features come from."""
    if recipe.get("model_license"):
        return str(recipe["model_license"])
    if recipe.get("weights_uri") == "random":
        return "none (random weights)"
    for e in ENTRIES.values():
        weights = [f for f in e.files if f.path.endswith(".pt")]
        if any(recipe.get("weights_uri") == f.url or recipe.get("weights_sha256") == _expected(e.name, f)
               for f in weights):
            return e.license
    if str(recipe.get("weights_uri", "")).endswith("coredino-n-default.pt"):
        return ENTRIES["default"].license
    return "unknown: see where the weights come from"


def notice(license: str) -> Optional[str]:
    """The one-line notice a non-commercial licence prints on use."""
    if "NC" not in license.split(" (")[0]:
        return None
    return f"the model's licence is {license}: do not use its outputs commercially"


def describe() -> list[dict]:
    """Every entry for `coredino info` and the service's capabilities."""
    rows = []
    for e in ENTRIES.values():
        rows.append(dict(
            name=e.name, title=e.title, license=e.license, gsd=e.gsd, recipe=e.recipe,
            sources=list(e.sources), codebook=e.codebook, folder=str(folder(e.name)) if e.files else None,
            ready=not missing(e),
            files=[dict(path=f.path, url=f.url, sha256=_expected(e.name, f), pinned=bool(f.sha256),
                        present=(folder(e.name) / f.path).is_file()) for f in e.files]))
    return rows
