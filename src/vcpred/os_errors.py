"""Operating-system errors a user causes (a full or read-only disk, missing permissions, a quota, a
too-long name) as one clear sentence naming the path and the cause, instead of "internal error".

`describe(exc, where=...)` returns that sentence, or None for an OSError that is not one of these
(then it stays a bug report). The CLI uses it for every command; code that handles one patient at a
time can use it to tell a full disk from a bad patient.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

# errno -> (cause, what to do)
USER_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space or choose an output folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or choose an output folder elsewhere"),
    errno.EROFS: ("read-only file system", "choose an output folder on a writable disk"),
    errno.EACCES: ("permission denied", "check the permissions of the folder or choose another one"),
    errno.EPERM: ("operation not permitted", "check the permissions of the folder or choose another one"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter output path (or shorter patient ids)"),
}


# Rust's io::Error as libraries written in Rust pass it on inside their own exception (safetensors'
# SafetensorError: 'Error while serializing: I/O error: No space left on device (os error 28) at path
# "DIR/.tmpXXXX"'): its errno, and the path when the message names one.
WRAPPED_OS_ERROR = re.compile(r"\(os error (\d+)\)(?: at path \"(.*)\")?")


def as_os_error(exc: BaseException) -> OSError | None:
    """exc itself when it is an OSError; the OSError a library wrapped in its own exception; else None."""
    if isinstance(exc, OSError):
        return exc
    found = WRAPPED_OS_ERROR.search(str(exc))
    if found is None:
        return None
    path = found[2]
    if path is not None and Path(path).name.startswith(".tmp"):
        path = str(Path(path).parent)  # the library's temporary file: its folder is what the user knows
    return OSError(int(found[1]), os.strerror(int(found[1])), path)


def is_user_os_error(exc: BaseException) -> bool:
    error = as_os_error(exc)
    return error is not None and error.errno in USER_OS_ERRORS


def describe(exc: BaseException, *, where: str | None = None) -> str | None:
    """'PATH: cause (ENAME); what to do', or None when exc is not an OS error a user causes (also
    when a library wrapped one in its own exception).

    where: the output the command was writing, named when the error carries no file name."""
    error = as_os_error(exc)
    if error is None or error.errno not in USER_OS_ERRORS:
        return None
    cause, hint = USER_OS_ERRORS[error.errno]
    name = errno.errorcode.get(error.errno, str(error.errno))
    if error.filename is not None:
        return f"{error.filename}: {cause} ({name}); {hint}"
    return f"{cause} ({name}){f' while writing {where}' if where else ''}; {hint}"
