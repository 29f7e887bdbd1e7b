"""botbox's entry point: ``python run.py`` starts the server; ``--help`` lists the commands."""

import sys

from runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
