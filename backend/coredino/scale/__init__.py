"""Scale-out executors for batch runs (Ray) and the row bands that split one raster across workers."""
