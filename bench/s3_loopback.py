"""`coredino batch` from and to a real S3-compatible server on loopback (moto_server), then a
listing of the bucket with GDAL's COG validation of every output.

    .venv/bin/python bench/s3_loopback.py                       # in-process batch
    .venv/bin/python bench/s3_loopback.py --ray --workers 2 --band-rows 2

Uploads the demo raster and a Kampala crop to s3://orthos/scenes/, runs the CLI with the given
options on /vsis3/orthos/scenes/ -> /vsis3/orthos/classes/ and prints what is in the bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from osgeo import gdal
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_S3_ENDPOINT": f"127.0.0.1:{port}", "AWS_HTTPS": "NO",
                           "AWS_VIRTUAL_HOSTING": "FALSE", "PYTHONPATH": str(ROOT / "backend")})
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket="orthos")
        client.upload_file(str(ROOT / "resources" / "montevideo_0p25m_demo.tif"), "orthos",
                           "scenes/montevideo.tif")
        client.upload_file(str(ROOT / "tests" / "data" / "kampala_0p30m_3857.tif"), "orthos",
                           "scenes/kampala.tif")
        cmd = [sys.executable, "-m", "coredino.cli", "batch", "/vsis3/orthos/scenes/",
               "/vsis3/orthos/classes/", "--device", "cpu", *sys.argv[1:]]
        print("$ coredino " + " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True)
        print(f"\ns3://orthos/classes/ on {url}:")
        for obj in client.list_objects_v2(Bucket="orthos", Prefix="classes/")["Contents"]:
            line = f"{obj['Size']:>9}  {obj['Key']}"
            if obj["Key"].endswith(".tif"):
                path = f"/vsis3/orthos/{obj['Key']}"
                _, errors, _ = validate(path, full_check=True)
                ds = gdal.Open(path)
                line += (f"  {ds.RasterXSize}x{ds.RasterYSize}, layout "
                         f"{ds.GetMetadata('IMAGE_STRUCTURE').get('LAYOUT')}, "
                         f"{'valid COG' if not errors else 'INVALID: ' + '; '.join(errors)}")
                ds = None
            print(line)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
