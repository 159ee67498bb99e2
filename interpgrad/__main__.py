"""``python -m interpgrad`` (also what ``torchrun -m interpgrad train ...`` runs on every process)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
