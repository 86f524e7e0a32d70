"""``python -m ukr_bench.bench RUN_DIR BACKEND``: the per-backend worker process of a sweep."""

import sys

from ukr_bench.bench.worker import main

sys.exit(main())
