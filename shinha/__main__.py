"""`python -m shinha` is the `shinha` command."""

from shinha.cli import entry

entry()
