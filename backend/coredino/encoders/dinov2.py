"""DINOv2 (with or without registers) from transformers, as a patch encoder."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from .base import Encoder, ModelSpec
from .weights import hf_cache_dir, sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def _is_path(variant: str) -> bool:
    """A local folder rather than a hub id (``owner/name``)."""
    return (os.path.exists(os.path.expanduser(variant)) or variant.startswith((".", "/", "~"))
            or variant.count("/") > 1 or "\\" in variant)


def _weights_file(variant: str, cache_dir: Path | None) -> Path:
    """The weights file ``from_pretrained`` used, in the local folder or the hub cache."""
    from huggingface_hub import try_to_load_from_cache

    for name in _WEIGHT_FILES:
        if _is_path(variant):
            found = Path(variant).expanduser() / name
        else:
            cached = try_to_load_from_cache(variant, name, cache_dir=cache_dir)
            found = Path(cached) if isinstance(cached, str) else None
        if found is not None and found.is_file():
            return found
    raise UserError(f"{variant}: no model.safetensors or pytorch_model.bin found; re-save the "
                    f"model with save_pretrained")


class DinoV2Encoder(Encoder):
    """Patch tokens of the last layer (CLS and register tokens dropped), ImageNet-normalised input."""

    family = "dinov2"
    normalisation = "imagenet"
    layer = None

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        from transformers import AutoModel

        variant, cache_dir = spec.variant, hf_cache_dir()
        if _is_path(variant) and not os.path.isdir(os.path.expanduser(variant)):
            raise UserError(f"DINOv2 model folder not found: {variant}; pass a folder saved with "
                            f"save_pretrained or a hub id such as facebook/dinov2-with-registers-base")
        source = os.path.expanduser(variant) if _is_path(variant) else variant
        try:
            model = AutoModel.from_pretrained(source, cache_dir=cache_dir, dtype=torch.float32,
                                              attn_implementation="sdpa")
        except (OSError, ValueError) as exc:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            fix = ("it is not in the local cache and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE "
                   "once to download it" if offline and not _is_path(variant) else
                   "check the hub id / folder (it needs config.json and model.safetensors)")
            raise UserError(f"cannot load DINOv2 model {variant}: {type(exc).__name__}; {fix}, "
                            f"or pass a local folder saved with save_pretrained") from exc
        config = model.config
        if not config.model_type.startswith("dinov2"):
            raise UserError(f"{variant} is a {config.model_type} model, not DINOv2; pass a "
                            f"DINOv2 model such as facebook/dinov2-with-registers-base")
        self.model = model.eval().requires_grad_(False)
        self.variant, self.weights_uri = variant, variant
        self.weights_sha256 = sha256_file(_weights_file(source, cache_dir))
        self.patch, self.dim = int(config.patch_size), int(config.hidden_size)
        self.skip = 1 + int(getattr(config, "num_register_tokens", 0))  # CLS + registers
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, dim, H // patch, W // patch)."""
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        tokens = self.model(pixel_values=(x - self.mean) / self.std).last_hidden_state
        return tokens[:, self.skip:].transpose(1, 2).reshape(x.shape[0], self.dim, h, w)
