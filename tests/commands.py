"""The ``mtasts`` command as a user runs it, for tests that start it as a child process.

The console script's own entry point (:func:`mtasts.cli.main.run`: uvloop, one-line errors, real
exit statuses) in the interpreter running the suite, so a test never depends on where the
installer put the ``mtasts`` script or on ``PATH``.
"""

from __future__ import annotations

import sys

MTASTS: tuple[str, ...] = (sys.executable, "-c", "from mtasts.cli.main import run; run()")
"""``mtasts`` as an argument-vector prefix: ``[*MTASTS, "check", "example.com"]``."""
