"""The same app as an AWS Lambda function (Function URL or API Gateway), through Mangum.

Set the handler to `server.lambda_handler.handler`. Mangum runs the app's lifespan around every
invocation; the models load in the first one only (the registry remembers it has loaded), and
stay in memory while Lambda keeps the execution environment warm.

Configuration comes from the same SCRATCHNET_* environment variables as `python -m server`.
The package folder is read-only on Lambda: scratchnet then keeps Numba's cache in a private folder
under /tmp by itself (scratchnet/runtime/startup.py), unless NUMBA_CACHE_DIR says where.
"""

from __future__ import annotations

import os

# One BLAS thread, before NumPy loads: see server/__main__.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from mangum import Mangum

from server.app import create_app

app = create_app()
handler = Mangum(app, lifespan="auto")
