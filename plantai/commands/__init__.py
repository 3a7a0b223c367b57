"""One module per ``plantai`` command group; :mod:`plantai.cli` declares them in one place."""
