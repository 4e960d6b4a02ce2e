"""One-line errors for the entry points: a bad input (config key, path, device, data or input line) is a
message and a non-zero exit status, not a traceback through Hydra, Lightning and our own frames.

The message already names what to fix (the validation functions are written so); the traceback only helps a
developer, who asks for it with ``HYDRA_FULL_ERROR=1`` (Hydra's own switch, for every entry point) or ``--debug``
(the argparse scripts). Errors outside `USER_ERRORS` (a bug, an out-of-memory, a CUDA fault) keep their traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.experiment.run_lock import RunLockedError

TRACEBACK_ENV = "HYDRA_FULL_ERROR"
EXIT_STATUS = 2  # argparse's status for a usage error; Hydra's own composition errors exit 1
HINT = f"({TRACEBACK_ENV}=1 shows the traceback)"


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can fix from the message: our validation (ValueError, DataError), a run another process holds,
    a missing path, a config Hydra composed but OmegaConf cannot resolve (``???`` left unset, a bad
    interpolation)."""
    errors: tuple[type[BaseException], ...] = (ValueError, DataError, RunLockedError, FileNotFoundError,
                                               FileExistsError)
    try:
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:
        return errors
    return (*errors, OmegaConfBaseException)


USER_ERRORS = _user_errors()


def wants_traceback(debug: bool = False) -> bool:
    """Whether the caller asked for the full traceback (``--debug`` or ``HYDRA_FULL_ERROR=1``)."""
    return debug or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """The message on one line. OmegaConf appends ``full_key:``/``object_type=`` lines that repeat the key: only its
    first line is kept; our own messages are joined (a wrapped message is still one sentence)."""
    text = str(err).strip() or type(err).__name__
    if type(err).__module__.startswith("omegaconf"):
        text = text.splitlines()[0]
    return " ".join(text.split())


def fail(prog: str, err: BaseException | str, hint: bool = True) -> NoReturn:
    """Print ``PROG: error: MESSAGE`` (and how to see the traceback) to stderr and exit with `EXIT_STATUS`."""
    message = one_line(err) if isinstance(err, BaseException) else " ".join(str(err).split())
    sys.stderr.write(f"{prog}: error: {message}\n" + (f"{HINT}\n" if hint else ""))
    sys.stderr.flush()
    raise SystemExit(EXIT_STATUS)


@contextmanager
def one_line_errors(prog: str, debug: bool = False,
                    errors: tuple[type[BaseException], ...] = USER_ERRORS) -> Iterator[None]:
    """Turn `errors` raised inside the block into `fail` (unless a traceback was asked for, `wants_traceback`)."""
    try:
        yield
    except errors as err:
        if wants_traceback(debug):
            raise
        fail(prog, err)


def check_device(device: str) -> None:
    """A torch device string that this machine can use, checked before any model is loaded: ``--device cuda``
    without CUDA would otherwise fail deep inside the first ``.to()``."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device}: not a torch device ({one_line(err)}); e.g. cpu, cuda, cuda:1") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                         f"built {'with' if torch.version.cuda else 'without'} CUDA): use --device cpu")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine: use --device cpu")
