"""`python -m shinha` is the `shinha` command."""

import sys

from shinha.cli import main

sys.exit(main())
