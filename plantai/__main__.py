"""``python -m plantai``: the same as the ``plantai`` command."""

from plantai.cli import cli

cli()
