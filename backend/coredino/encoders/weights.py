"""Finding model weights: local paths, http(s) downloads cached once, and ``hf://`` files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from coredino_contract import protocol

from ..download import Offline, download, sha256_file
from ..errors import UserError

__all__ = ["COREDINO_UPSTREAM_URL", "hf_cache_dir", "resolve_weights", "sha256_file"]

COREDINO_UPSTREAM_URL = (
    "https://huggingface.co/gajeshladhar/core-dino/resolve/main/checkpoints/student.pt"
)
"""The upstream core-dino student checkpoint (YOLO11-x layers 0-22); for docs and CLI help."""


def hf_cache_dir() -> Optional[Path]:
    """Hub cache: the hub's own when ``HF_HOME``/``HF_HUB_CACHE`` is set, else ours."""
    if os.environ.get("HF_HOME") or os.environ.get("HF_HUB_CACHE"):
        return None
    return protocol.cache_dir() / "hf"


def resolve_weights(uri: str, cache_dir: Optional[Path] = None) -> Path:
    """Local file for ``uri``: a path, an http(s) URL (downloaded once) or ``hf://owner/repo/file``."""
    if uri.startswith(("http://", "https://")):
        return _download(uri, Path(cache_dir) if cache_dir else protocol.cache_dir() / "weights")
    if uri.startswith("hf://"):
        return _hf_file(uri, cache_dir)
    path = Path(uri).expanduser()
    if not path.is_file():
        raise UserError(
            f"weights file not found: {path}; pass an existing .pt file, an http(s) URL or "
            f"hf://owner/repo/file (e.g. {COREDINO_UPSTREAM_URL})"
        )
    return path


def _download(url: str, cache_dir: Path) -> Path:
    """The file at ``url``: the catalogue's verified copy when it lists the URL, else cached once."""
    from ..catalogue import catalogue_file

    known = catalogue_file(url)
    if known is not None:
        return known
    name = os.path.basename(urlparse(url).path) or "weights"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if not target.is_file():
        try:
            download(url, target)
        except Offline:
            raise UserError(f"{url} is not in the cache and the network is off: download it by "
                            f"hand and pass the local file path") from None
    return target


def _hf_file(uri: str, cache_dir: Optional[Path]) -> Path:
    from huggingface_hub import hf_hub_download

    parts = uri[len("hf://"):].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise UserError(f"bad hub address {uri}; expected hf://owner/repo/path/in/repo.pt")
    try:
        return Path(hf_hub_download(
            repo_id=f"{parts[0]}/{parts[1]}", filename=parts[2],
            cache_dir=cache_dir or hf_cache_dir(),
        ))
    except Exception as exc:  # the hub raises many types: offline, 404, auth, network
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        fix = ("HF_HUB_OFFLINE is set and it is not cached: unset HF_HUB_OFFLINE once to fetch it"
               if offline else "check the address and network")
        raise UserError(
            f"cannot get {uri} ({type(exc).__name__}); {fix}, "
            f"or download the file by hand and pass its local path"
        ) from exc
