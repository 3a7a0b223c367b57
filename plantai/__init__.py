"""The ``plantai`` command line: a thin face over the packages (each command is one call)."""
