"""One error type for bad input, and the one-line way every stage reports it."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])


class PipelineError(Exception):
    """Bad input or a precondition that failed: the message is shown to the user as one line."""


def cli_errors(main: F) -> F:
    """Turn a PipelineError raised by a stage's main() into one line on stderr and exit code 2, and
    Ctrl-C into one line and exit code 130.

    Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
            print(f"stopped: {spec.name if spec else main.__module__} was interrupted; no output was written "
                  "(a training stage resumes from its last completed epoch when run again)", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
