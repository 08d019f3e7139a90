"""``python -m flowoptim_sched plot ...``: see :mod:`flowoptim_sched.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
