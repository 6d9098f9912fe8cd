"""The catalogue: offline instructions, fetch --from, checksums, resumable downloads, licences."""

import functools
import http.server
import io
import shutil
import threading

import numpy as np
import pytest
from osgeo import gdal

from coredino import catalogue
from coredino.cli import main
from coredino.codebook import Codebook
from coredino.download import DownloadFailed, download, sha256_file
from coredino.encoders.weights import COREDINO_UPSTREAM_URL
from coredino.engine import classify
from coredino.errors import UserError
from coredino.params import ClassifyOptions, ClassifyParams


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COREDINO_OFFLINE", "1")
    return tmp_path / "cache"


@pytest.fixture
def local_copies(tmp_path, geo, data):
    """geocentroids-sa's four files in the right formats (random model weights), in one folder."""
    d = tmp_path / "downloads"
    (d / "dinov2-with-registers-base").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(geo["model"] / name, d / "dinov2-with-registers-base" / name)
    shutil.copy(geo["root"] / "centroids_6k.npy", d / "centroids_6k.npy")
    shutil.copy(data / "geocentroids_color_map_rgb_6k.npy", d / "color_map_rgb_6k.npy")
    return d


def test_offline_classify_says_what_to_fetch_then_fetch_from_works(cache, local_copies, geo, tmp_path,
                                                                  capsys):
    out = tmp_path / "out" / "geo.tif"
    out.parent.mkdir()
    args = ["classify", geo["crop"], "-o", str(out), "--codebook", "geocentroids-sa", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "centroids_6k.npy" in err
    assert str(cache / "catalogue" / "geocentroids-sa") in err and "network is off" in err
    assert "coredino fetch geocentroids-sa --from DIR" in err and not out.exists()

    assert main(["fetch", "geocentroids-sa", "--from", str(local_copies)]) == 0
    sums = (cache / "catalogue" / "geocentroids-sa" / "SHA256SUMS").read_text()
    assert sha256_file(local_copies / "centroids_6k.npy") in sums
    assert "color_map" not in sums  # pinned, not recorded
    assert main(args) == 0
    ds = gdal.Open(str(out))
    tags = ds.GetMetadata()
    assert "MIT" in tags["MODEL_LICENSE"] and "Apache-2.0" in tags["MODEL_LICENSE"]
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16 and tags["K"] == "6144"
    ids = ds.ReadAsArray()
    ds = None
    # the same ids as the codebook imported by hand from the same files
    ref = tmp_path / "ref.tif"
    classify(ClassifyParams(geo["crop"], str(ref), ClassifyOptions(codebook=geo["book"], device="cpu")))
    assert np.array_equal(gdal.Open(str(ref)).ReadAsArray(), ids)


def test_fetch_refuses_files_that_are_not_the_published_ones(cache, local_copies, capsys):
    bad = local_copies / "color_map_rgb_6k.npy"
    np.save(bad, np.zeros((6144, 3), np.uint8))  # right format, wrong content: the pin refuses it
    assert main(["fetch", "geocentroids-sa", "--from", str(local_copies)]) == 2
    assert "differs from the pinned" in capsys.readouterr().err
    assert not (cache / "catalogue" / "geocentroids-sa" / "color_map_rgb_6k.npy").exists()
    # unpinned files: the first copy's sha256 is recorded, a different later copy is refused
    catalogue.fetch("core-dino-x", str(_dir_with(local_copies.parent / "x1", "student.pt", b"one")))
    with pytest.raises(UserError, match="differs from the recorded"):
        catalogue.fetch("core-dino-x", str(_dir_with(local_copies.parent / "x2", "student.pt", b"two")))
    with pytest.raises(UserError, match="lacks color_map_rgb_6k.npy, dinov2"):
        catalogue.fetch("geocentroids-sa", str(local_copies.parent / "x2"))


def _dir_with(folder, name, content):
    folder.mkdir()
    (folder / name).write_bytes(content)
    return folder


def test_core_dino_x_has_no_codebook_and_is_non_commercial(cache):
    with pytest.raises(UserError, match="no published codebook.*coredino cluster"):
        catalogue.codebook_path("core-dino-x")
    licence = catalogue.license_for({"weights_uri": COREDINO_UPSTREAM_URL, "weights_sha256": "x"})
    assert licence.startswith("CC BY-NC 3.0") and "commercially" in catalogue.notice(licence)
    assert catalogue.notice(catalogue.ENTRIES["geocentroids-sa"].license) is None
    assert catalogue.model_spec("core-dino-x").weights == COREDINO_UPSTREAM_URL
    with pytest.raises(UserError, match="core-dino-x needs student.pt.*fetch core-dino-x --from"):
        catalogue.catalogue_file(COREDINO_UPSTREAM_URL)


def test_non_commercial_codebook_prints_a_notice_and_tags_its_licence(tmp_path, data, codebook):
    cb = Codebook.load(codebook)
    cb.recipe["model_license"] = catalogue.ENTRIES["core-dino-x"].license
    nc = tmp_path / "nc.codebook.npz"
    cb.save(nc)
    out = tmp_path / "nc.tif"
    result = classify(ClassifyParams(str(data / "kampala_0p30m_3857.tif"), str(out),
                                     ClassifyOptions(codebook=str(nc))))
    assert any("CC BY-NC 3.0" in w and "commercially" in w for w in result.warnings)
    assert gdal.Open(str(out)).GetMetadataItem("MODEL_LICENSE").startswith("CC BY-NC 3.0")


class _Ranged(http.server.SimpleHTTPRequestHandler):
    """Serves files with ``Range: bytes=N-`` support (what resumable downloads need)."""

    def send_head(self):
        start = self.headers.get("Range", "bytes=0-")[6:-1]
        if not start or start == "0":
            return super().send_head()
        data = open(self.translate_path(self.path), "rb").read()
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - int(start)))
        self.end_headers()
        return io.BytesIO(data[int(start):])

    def log_message(self, *args):
        pass


def test_download_resumes_a_part_file_and_verifies_the_checksum(tmp_path, geo, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    source = geo["root"] / "centroids_6k.npy"
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(source, served / "c.npy")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Ranged, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/c.npy"
    target = tmp_path / "got" / "c.npy"
    target.parent.mkdir()
    whole = source.read_bytes()
    target.with_name("c.npy.part").write_bytes(whole[:1000])  # an interrupted earlier download
    try:
        digest = download(url, target, sha256_file(source))
        assert digest == sha256_file(source) and target.read_bytes() == whole
        with pytest.raises(DownloadFailed, match="sha256"):
            download(url, tmp_path / "got" / "wrong.npy", "0" * 64)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in target.parent.iterdir()) == ["c.npy"]  # the bad one was deleted
