"""``python -m ydrop.cli ...``, the form torchrun runs: ``torchrun --nproc_per_node N -m ydrop.cli ...``."""

import sys

from . import main

sys.exit(main())
