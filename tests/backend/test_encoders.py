"""Encoders with real torch / ultralytics / transformers: shapes, strict loading, downloads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # read once when huggingface_hub is imported
os.environ["YOLO_OFFLINE"] = "1"

import functools
import hashlib
import http.server
import threading

import pytest
import torch
from torch import nn

from coredino.encoders import ModelSpec, build_encoder
from coredino_contract.params import parse_model
from coredino.encoders.weights import resolve_weights, sha256_file
from coredino.encoders.yolo import CoreDinoEncoder, build_yolo_backbone, run_layers
from coredino.errors import UserError

torch.set_num_threads(1)  # 2 threads spin-wait badly when the 2 cores are shared
CPU = torch.device("cpu")


def _image(h: int = 128, w: int = 128, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1))


def _backbone_with_stats(scale: str) -> nn.ModuleList:
    """Unfused layers 0-22 with non-trivial BatchNorm statistics, so fusing really changes convs."""
    torch.manual_seed(2)
    layers = build_yolo_backbone(scale)
    for m in layers.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return layers.eval()


def _save(state: dict, path) -> str:
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def backbone_n() -> nn.ModuleList:
    return _backbone_with_stats("n")


@pytest.fixture
def student(backbone_n, tmp_path) -> str:
    return _save({f"layers.{k}": v for k, v in backbone_n.state_dict().items()},
                 tmp_path / "student.pt")


# core-dino, random weights

@pytest.mark.parametrize("layer,stride,dim", [(16, 8, 64), (19, 16, 128), (22, 32, 256)])
def test_random_shapes(layer, stride, dim):
    enc = build_encoder(ModelSpec("core-dino", "n", "random", layer), CPU)
    with torch.no_grad():
        out = enc(_image(320, 320))
    assert out.shape == (1, dim, 320 // stride, 320 // stride)
    assert (enc.patch, enc.dim, enc.id) == (stride, dim, f"core-dino:n@{layer}")
    assert enc.recipe()["weights_sha256"] == "random-seed0"
    assert build_encoder(ModelSpec("core-dino", "n", "random", layer), CPU) is enc


def test_random_is_deterministic_and_fused():
    spec = ModelSpec("core-dino", "n", "random", 19)
    a, b = CoreDinoEncoder(spec), CoreDinoEncoder(spec)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in a.modules())
    torch.manual_seed(0)
    unfused = build_yolo_backbone("n").eval()
    with torch.no_grad():
        out = a(_image())
        assert torch.equal(out, b(_image()))
        torch.testing.assert_close(out, run_layers(unfused[:20], _image()), atol=1e-4, rtol=1e-4)


def test_size_multiple_of_patch_but_not_32_is_padded():
    enc = build_encoder(ModelSpec("core-dino", "n", "random", 16), CPU)
    with torch.no_grad():
        assert enc(_image(328, 336)).shape == (1, 64, 41, 42)


# core-dino, strict loading

def test_load_layers_keys_fused_matches_unfused(backbone_n, student):
    enc = CoreDinoEncoder(ModelSpec("core-dino", "n", student, 22))
    with torch.no_grad():
        torch.testing.assert_close(enc(_image()), run_layers(backbone_n, _image()),
                                   atol=1e-4, rtol=1e-4)
    with open(student, "rb") as f:
        assert enc.weights_sha256 == sha256_file(student) == hashlib.sha256(f.read()).hexdigest()


def test_load_model_keys_in_wrapper(backbone_n, tmp_path):
    state = {f"model.{k}": v for k, v in backbone_n.state_dict().items()}
    path = _save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")
    enc = CoreDinoEncoder(ModelSpec("core-dino", "n", path, 19))
    with torch.no_grad():
        torch.testing.assert_close(enc(_image()), run_layers(backbone_n[:20], _image()),
                                   atol=1e-4, rtol=1e-4)


def test_missing_key_is_an_error(student, tmp_path):
    state = torch.load(student, weights_only=True)
    del state["layers.5.conv.weight"]
    path = _save(state, tmp_path / "short.pt")
    with pytest.raises(UserError, match=r"short\.pt.*1 missing \(layers\.5\.conv\.weight\)"):
        CoreDinoEncoder(ModelSpec("core-dino", "n", path, 19))


def test_unexpected_key_is_an_error(student, tmp_path):
    state = torch.load(student, weights_only=True)
    state["layers.23.foo"] = torch.zeros(1)
    path = _save(state, tmp_path / "long.pt")
    with pytest.raises(UserError, match=r"long\.pt.*1 unexpected \(layers\.23\.foo\)"):
        CoreDinoEncoder(ModelSpec("core-dino", "n", path, 19))


def test_other_scale_is_an_error_naming_file_and_scale(tmp_path):
    torch.manual_seed(0)
    state = {f"layers.{k}": v for k, v in build_yolo_backbone("s").state_dict().items()}
    path = _save(state, tmp_path / "small.pt")
    with pytest.raises(UserError, match=r"small\.pt.*wrong shape.*core-dino:s"):
        CoreDinoEncoder(ModelSpec("core-dino", "n", path, 19))


def test_unreadable_or_missing_file_is_an_error(tmp_path):
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.pt: not a readable"):
        CoreDinoEncoder(ModelSpec("core-dino", "n", str(tmp_path / "junk.pt"), 19))
    with pytest.raises(UserError, match="not found: .*nope.pt"):
        resolve_weights(str(tmp_path / "nope.pt"))


# weights download and cache

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_once_then_cache(student, tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    handler = functools.partial(_Quiet, directory=os.path.dirname(student))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "cache"
    try:
        got = resolve_weights(f"{base}/student.pt", cache_dir=cache)
        with pytest.raises(UserError, match=f"{base}/absent.pt.*by hand"):
            resolve_weights(f"{base}/absent.pt", cache_dir=cache)
    finally:
        server.shutdown()
        server.server_close()
    assert sha256_file(got) == sha256_file(student)
    assert got.name.endswith("-student.pt") and len(got.name) == 16 + 1 + len("student.pt")
    assert sorted(p.name for p in cache.iterdir()) == [got.name]  # no partial files left
    assert resolve_weights(f"{base}/student.pt", cache_dir=cache) == got  # server is gone


def test_hub_file_offline_and_not_cached(tmp_path):
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        resolve_weights("hf://nobody/nothing/student.pt", cache_dir=tmp_path)


# DINOv2

@pytest.mark.parametrize("kind,skip", [("registers", 5), ("plain", 1)])
def test_dinov2_patch_tokens(dinov2_folders, kind, skip):
    from transformers import AutoModel

    folder = dinov2_folders[kind]
    enc = build_encoder(ModelSpec("dinov2", str(folder)), CPU)
    assert (enc.patch, enc.dim, enc.layer, enc.normalisation) == (14, 64, None, "imagenet")
    assert enc.weights_sha256 == sha256_file(folder / "model.safetensors")
    assert enc.model.config._attn_implementation == "sdpa"
    raw = AutoModel.from_pretrained(folder).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for h, w, batch in ((224, 224, 2), (308, 224, 1)):
        x = _image(h, w, batch)
        with torch.no_grad():
            out = enc(x)
            tokens = raw(pixel_values=(x - mean) / std).last_hidden_state[:, skip:]
        assert out.shape == (batch, 64, h // 14, w // 14)
        want = tokens.reshape(batch, h // 14, w // 14, 64).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)


def test_dinov2_missing_folder_or_offline_hub_id(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        build_encoder(ModelSpec("dinov2", str(tmp_path / "absent")), CPU)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        build_encoder(ModelSpec("dinov2", "nobody/no-such-dinov2"), CPU)


# registry

def test_parse_model():
    assert parse_model("core-dino:x") == ModelSpec("core-dino", "x", "random", 19)
    assert parse_model("dinov2:facebook/dinov2-with-registers-base") == ModelSpec(
        "dinov2", "facebook/dinov2-with-registers-base", "random", None)
    assert parse_model("dinov2:/path/to/folder") == ModelSpec("dinov2", "/path/to/folder", "random", None)
    with pytest.raises(UserError, match="core-dino, dinov2"):
        parse_model("resnet:50")
    with pytest.raises(UserError, match="no variant"):
        parse_model("core-dino")


def test_bad_family_scale_or_layer():
    with pytest.raises(UserError, match="known: core-dino, dinov2"):
        build_encoder(ModelSpec("resnet"), CPU)
    with pytest.raises(UserError, match="scale 'q'"):
        build_encoder(ModelSpec("core-dino", "q"), CPU)
    with pytest.raises(UserError, match="layer 17"):
        build_encoder(ModelSpec("core-dino", "n", "random", 17), CPU)
