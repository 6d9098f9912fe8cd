"""Cloud-native inputs and outputs against a real S3-compatible server (moto) on loopback:
/vsis3/ prefixes and a STAC catalog in, /vsis3/ COGs out, the same pixels as local files."""

import json
import shutil
import tempfile
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pytest
import ray
import torch
from osgeo import gdal
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

from coredino.engine import batch, classify
from coredino.errors import UserError
from coredino.params import BatchParams, ClassifyOptions, ClassifyParams

BUCKET = "orthos"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The Ray actors' thread count here too: CPU float sums depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory, demo_raster, data):
    """moto_server on 127.0.0.1 with a bucket of real crops and a STAC catalog -> its base URL."""
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_S3_ENDPOINT": f"127.0.0.1:{port}", "AWS_HTTPS": "NO",
           "AWS_VIRTUAL_HOSTING": "FALSE", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        local = tmp_path_factory.mktemp("s3src")
        gdal.Translate(str(local / "montevideo.tif"), str(demo_raster), srcWin=[0, 0, 768, 1536])
        gdal.Translate(str(local / "kampala.tif"), str(data / "kampala_0p30m_3857.tif"))
        for name in ("montevideo.tif", "kampala.tif"):  # public, like a public STAC catalog's
            client.upload_file(str(local / name), BUCKET, f"scenes/{name}", ExtraArgs={"ACL": "public-read"})
        for key, doc in _stac(url).items():
            client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(doc).encode(), ACL="public-read")
        yield {"url": url, "client": client, "local": local}
        gdal.VSICurlClearCache()
    server.terminate()
    server.wait(timeout=30)


def _stac(url: str) -> dict[str, dict]:
    """A catalog -> collection -> two items; one visual asset by relative href, one RGB by s3://."""
    rgb = [{"common_name": c} for c in ("red", "green", "blue")]
    item = lambda name, assets: {"type": "Feature", "stac_version": "1.0.0", "id": name,  # noqa: E731
                                 "geometry": None, "properties": {}, "links": [], "assets": assets}
    return {
        "stac/catalog.json": {"type": "Catalog", "id": "c", "stac_version": "1.0.0", "description": "",
                              "links": [{"rel": "child", "href": "collection/collection.json"}]},
        "stac/collection/collection.json": {
            "type": "Collection", "id": "k", "stac_version": "1.0.0", "description": "", "links": [
                {"rel": "item", "href": "mvd/mvd.json"}, {"rel": "item", "href": f"{url}/{BUCKET}/stac/kla.json"}]},
        "stac/collection/mvd/mvd.json": item("mvd", {
            "thumbnail": {"href": "thumb.png", "roles": ["thumbnail"]},
            "visual": {"href": "../../../scenes/montevideo.tif", "roles": ["visual"]}}),
        "stac/kla.json": item("kla", {"image": {"href": f"s3://{BUCKET}/scenes/kampala.tif", "eo:bands": rgb}}),
    }


def _keys(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _assert_valid_cog(path: str) -> None:
    warnings, errors, _ = validate(path, full_check=True)
    assert not errors, (path, errors)


@pytest.fixture(scope="module")
def local_reference(s3, codebook) -> dict[str, np.ndarray]:
    """One-piece local runs with cut tiles on torch: what Ray's row bands must reproduce exactly."""
    options = ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch")
    arrays = {}
    for name in ("montevideo", "kampala"):
        out = s3["local"] / f"{name}_classes.tif"
        classify(ClassifyParams(str(s3["local"] / f"{name}.tif"), str(out), options))
        arrays[name] = gdal.Open(str(out)).ReadAsArray()
    return arrays


def test_stac_catalog_url_to_s3_outputs_are_valid_cogs(s3, codebook, local_reference):
    params = BatchParams(f"{s3['url']}/{BUCKET}/stac/catalog.json", f"/vsis3/{BUCKET}/classes",
                         options=ClassifyOptions(codebook=codebook, device="cpu", rgb=True, blend=False,
                                                 runtime="torch"))
    result = batch(params)
    assert result.failed == {} and len(result.done) == 2
    assert result.done[0] == f"/vsicurl/{s3['url']}/{BUCKET}/scenes/montevideo.tif"  # relative href
    assert result.done[1] == f"/vsis3/{BUCKET}/scenes/kampala.tif"  # s3:// href
    assert _keys(s3["client"], "classes/") == [  # no temporary keys left behind
        "classes/kla_classes.qml", "classes/kla_classes.tif", "classes/kla_classes_rgb.tif",
        "classes/mvd_classes.qml", "classes/mvd_classes.tif", "classes/mvd_classes_rgb.tif"]
    for item, name in (("mvd", "montevideo"), ("kla", "kampala")):
        path = f"/vsis3/{BUCKET}/classes/{item}_classes.tif"
        _assert_valid_cog(path)
        _assert_valid_cog(f"/vsis3/{BUCKET}/classes/{item}_classes_rgb.tif")
        assert np.array_equal(gdal.Open(path).ReadAsArray(), local_reference[name])

    assert batch(params).skipped == result.done  # resumes against the object store too


@pytest.fixture(scope="module")
def ray_runtime(s3, tmp_path_factory):
    """Started after the S3 settings are in the environment: the workers inherit them."""
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def test_ray_batch_from_s3_prefix_to_s3_with_bands(s3, ray_runtime, codebook, local_reference):
    params = BatchParams(f"/vsis3/{BUCKET}/scenes/", f"/vsis3/{BUCKET}/ray", pattern="*.tif",
                         options=ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch"), executor="ray",
                         workers=2, band_rows=2)
    result = batch(params)
    assert result.failed == {} and len(result.done) == 2
    assert _keys(s3["client"], "ray/") == ["ray/coredino-batch-summary.json", "ray/kampala_classes.qml",
                                           "ray/kampala_classes.tif", "ray/montevideo_classes.qml",
                                           "ray/montevideo_classes.tif"]  # band parts deleted
    summary = json.loads(s3["client"].get_object(Bucket=BUCKET, Key="ray/coredino-batch-summary.json")["Body"].read())
    assert summary["bands"] == {f"/vsis3/{BUCKET}/scenes/montevideo.tif": 3}
    for name in ("montevideo", "kampala"):
        path = f"/vsis3/{BUCKET}/ray/{name}_classes.tif"
        _assert_valid_cog(path)
        assert np.array_equal(gdal.Open(path).ReadAsArray(), local_reference[name])


def test_unreachable_buckets_are_one_line_user_errors(s3, codebook):
    with pytest.raises(UserError, match="cannot list it"):
        batch(BatchParams("/vsis3/no-such-bucket/scenes/", str(s3["local"] / "x")))
    with pytest.raises(UserError, match=r"no-such-bucket/k_classes\.(qml|tif): cannot write there"):
        classify(ClassifyParams(str(s3["local"] / "kampala.tif"), "/vsis3/no-such-bucket/k_classes.tif",
                                ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch")))


def test_local_stac_item_is_classified_and_items_without_rgb_are_user_errors(tmp_path, data, codebook):
    gdal.Translate(str(tmp_path / "k.tif"), str(data / "kampala_0p30m_3857.tif"))
    item = {"type": "Feature", "id": "k", "stac_version": "1.0.0", "geometry": None, "properties": {},
            "links": [], "assets": {"visual": {"href": "./k.tif", "roles": ["visual"]}}}
    (tmp_path / "item.json").write_text(json.dumps(item))
    result = classify(ClassifyParams(str(tmp_path / "item.json"), str(tmp_path / "k_classes.tif"),
                                     ClassifyOptions(codebook=codebook, device="cpu", blend=False, runtime="torch")))
    assert result.tiles == 4 and gdal.Open(result.output).GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"

    item["assets"] = {"nir": {"href": "./k.tif", "eo:bands": [{"common_name": "nir"}]}}
    (tmp_path / "nir.json").write_text(json.dumps(item))
    with pytest.raises(UserError, match=r"nir.json: item 'k' has no 'visual' or RGB asset \(assets: nir\)"):
        batch(BatchParams(str(tmp_path / "nir.json"), str(tmp_path / "out")))


def test_object_store_globs_match_like_glob():
    from coredino.storage import _glob_regex
    names = ["a.tif", "x/b.tif", "x/y/c.tif", ".coredino-parts/m/rows-0.tif", "x/.d.tif", "e.json"]
    assert [n for n in names if _glob_regex("**/*.tif").fullmatch(n)] == ["a.tif", "x/b.tif", "x/y/c.tif"]
    assert [n for n in names if _glob_regex("*.tif").fullmatch(n)] == ["a.tif"]
    assert [n for n in names if _glob_regex("x/?.tif").fullmatch(n)] == ["x/b.tif"]
