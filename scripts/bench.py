#!/usr/bin/env python3
"""Morpheus benchmark (`make bench`): every part, one bench.json. See bench/cli.py or --help.

    python scripts/bench.py                      # every part, a server started here
    python scripts/bench.py --quick --out /tmp/b # the short run `make test` keeps working
    python scripts/bench.py --parts soak --soak-s 120
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
