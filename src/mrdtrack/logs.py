"""Logging set-up shared by the command line and the workflow's scripts."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | os.PathLike[str] | None = None, level: int = logging.INFO) -> None:
    """Send mrdtrack's log records to `log_file` (a rule's log) or to stderr."""
    handler: logging.Handler = (
        logging.FileHandler(log_file, mode="w") if log_file else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


class UserFacingError(Exception):
    """A predictable problem with the inputs: reported as a message, never as a traceback."""


@contextlib.contextmanager
def user_errors_as_messages() -> Iterator[None]:
    """Turn predictable input errors into one clear message on stderr (and in the log) and exit status 1."""
    try:
        yield
    except UserFacingError as error:
        logging.getLogger("mrdtrack").error("%s", error)
        print(f"mrdtrack: {error}", file=sys.stderr)
        raise SystemExit(1) from None
