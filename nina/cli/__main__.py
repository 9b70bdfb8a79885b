"""`python -m nina.cli ...`: the same as the `nina` console script."""

import sys

from nina.cli import main

sys.exit(main())
