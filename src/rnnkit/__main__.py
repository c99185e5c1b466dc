"""Entry point for ``python -m rnnkit``: hands over to the command line in `rnnkit.cli`."""

import sys

from rnnkit.cli import main

sys.exit(main())
