"""``python -m biosig`` runs the command line (also what ``torchrun -m biosig`` uses)."""

import sys

from biosig.cli import main

sys.exit(main())
