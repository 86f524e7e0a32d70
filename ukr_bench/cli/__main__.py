"""``python -m ukr_bench.cli``: the ``ukr-bench`` command without its console script."""

import sys

from ukr_bench.cli import main

sys.exit(main())
