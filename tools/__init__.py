"""Command-line tools: `pock-opt` (pock_opt.py) and the `pockengine` driver (driver.py)."""


class UserError(Exception):
    """Bad input from the user (a path, a name, a value): the tools print the message on one
    line and exit 2, without a traceback. Raise it from any subcommand."""
