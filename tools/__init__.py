"""Command-line tools: `pock-opt` (pock_opt.py) and the `pockengine` driver (driver.py)."""

from ..errors import UserError  # noqa: F401  (the old import path; the class lives in pockengine.errors)
