"""`python -m bench [part ...]`: the same benchmark as scripts/bench.py, parts named as words.

`python -m bench snac realtime` is `python scripts/bench.py --parts snac,realtime`; options
pass through (`python -m bench soak --soak-s 60 --out /tmp/s`). No part named: every part.
"""

from __future__ import annotations

import sys

from bench.cli import main
from bench.suite import PARTS


def _argv(args: list[str]) -> list[str]:
    parts = [a for a in args if a in PARTS]
    rest = [a for a in args if a not in PARTS]
    return ["--parts", ",".join(parts), *rest] if parts else rest


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
