"""`python -m crnn` and the `crnn` console script: see crnn/cli.py."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the command line with argv (default sys.argv[1:]); return the exit code."""
    from .cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
