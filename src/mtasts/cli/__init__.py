"""The ``mtasts`` command line: Typer commands that render the core's data with Rich."""
