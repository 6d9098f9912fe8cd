#!/usr/bin/env bash
# How the small real crops in resources/ and tests/data/ were cut from ../shared/data (run once;
# the outputs are committed, so users never need ../shared). Provenance: tests/data/ATTRIBUTION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${SHARED_DATA:-../shared/data}
jpeg_cog="-of COG -co COMPRESS=JPEG -co QUALITY=90 -co OVERVIEWS=NONE"
mkdir -p resources tests/data
# Demo input: warehouses, roads, fields and trees at the edge of Montevideo (0.25 m, UTM 21S).
gdal_translate -q $jpeg_cog -srcwin 2000 1000 1536 1536 \
  "$D/scenes/oam_uruguay_montevideo_0p25m.tif" resources/montevideo_0p25m_demo.tif
# Drone scene with a black (0,0,0) collar and no declared nodata (0.25 m, UTM 19S).
gdal_translate -q $jpeg_cog -srcwin 300 2300 1280 1024 \
  "$D/scenes/oam_bolivia_caranavi_drone_0p25m.tif" tests/data/caranavi_collar_0p25m.tif
# Water and vegetation (the river at Caranavi) beside streets and roofs: where tile seams show.
gdal_translate -q $jpeg_cog -srcwin 880 3350 1024 1024 \
  "$D/scenes/oam_bolivia_caranavi_drone_0p25m.tif" tests/data/caranavi_river_0p25m.tif
# 1-band 16-bit panchromatic in EPSG:4326 (geographic: auto-UTM), ~0.3 m.
gdal_translate -q -of GTiff -co COMPRESS=DEFLATE -co TILED=YES -srcwin 0 0 512 512 \
  "$D/labelled/spacenet_roads/spacenet_las_vegas_pan_0p30m_image.tif" tests/data/lasvegas_pan_uint16_4326.tif
# 4-band R,G,B,NIR (no colour interpretation), nodata 0, 5 m (coarser than the product's range).
gdal_translate -q -of GTiff -co COMPRESS=DEFLATE -co TILED=YES -srcwin 300 200 256 256 \
  "$D/scenes/naip_north_dakota_2020_rgbn_5m.tif" tests/data/naip_rgbn_5m.tif
# RGB in EPSG:3857 with an OSM building mask on the same grid (0.30 m nominal).
cp "$D/labelled/oam_osm_buildings/kampala_uganda_patch2_0p30m_image.tif" tests/data/kampala_0p30m_3857.tif
cp "$D/labelled/oam_osm_buildings/kampala_uganda_patch2_0p30m_buildings_mask.tif" tests/data/kampala_0p30m_3857_buildings.tif
# A larger Kampala patch (24 % buildings) for the find-similar test, with its OSM building mask.
gdal_translate -q $jpeg_cog "$D/labelled/oam_osm_buildings/kampala_uganda_patch1_0p30m_image.tif" \
  tests/data/kampala_patch1_0p30m_3857.tif
cp "$D/labelled/oam_osm_buildings/kampala_uganda_patch1_0p30m_buildings_mask.tif" tests/data/kampala_patch1_0p30m_3857_buildings.tif
# Two Dubai land-cover parts (satellite JPEG, not georeferenced, 5 classes): centre 160 x 160 px.
for tp in "1 318 242" "2 174 192"; do
  set -- $tp
  gdal_translate -q -of JPEG -co QUALITY=92 -srcwin $2 $3 160 160 \
    "$D/labelled/dubai_landcover/dubai_tile$1_part001_image.jpg" tests/data/dubai_tile$1_part001_image.jpg
  gdal_translate -q -of PNG -srcwin $2 $3 160 160 \
    "$D/labelled/dubai_landcover/dubai_tile$1_part001_mask_index.png" tests/data/dubai_tile$1_part001_mask_index.png
done
rm -f tests/data/*.aux.xml
