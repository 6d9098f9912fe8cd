"""Finding model weights: local paths, http(s) downloads cached once, and ``hf://`` files."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from tqdm import tqdm

from coredino_contract.protocol import cache_dir

from ..atomic import atomic_open
from ..errors import UserError

COREDINO_UPSTREAM_URL = (
    "https://huggingface.co/gajeshladhar/core-dino/resolve/main/checkpoints/student.pt"
)
"""The upstream core-dino student checkpoint (YOLO11-x layers 0-22); for docs and CLI help."""

_CHUNK = 1 << 20


def hf_cache_dir() -> Optional[Path]:
    """Hub cache: the hub's own when ``HF_HOME``/``HF_HUB_CACHE`` is set, else ours."""
    if os.environ.get("HF_HOME") or os.environ.get("HF_HUB_CACHE"):
        return None
    return cache_dir() / "hf"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(uri: str, cache_dir: Optional[Path] = None) -> Path:
    """Local file for ``uri``: a path, an http(s) URL (downloaded once) or ``hf://owner/repo/file``."""
    if uri.startswith(("http://", "https://")):
        return _download(uri, Path(cache_dir) if cache_dir else cache_dir() / "weights")
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
    name = os.path.basename(urlparse(url).path) or "weights"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(target) as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr,
                      disable=not sys.stderr.isatty()) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise OSError(f"incomplete download: {out.tell()} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise UserError(
            f"cannot download {url} ({exc}); download it by hand and pass the local file path"
        ) from exc
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
