"""``python -m mtasts``: the same entry point as the ``mtasts`` console script."""

from mtasts.cli.main import run

if __name__ == "__main__":
    run()
