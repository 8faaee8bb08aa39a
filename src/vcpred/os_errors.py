"""Operating-system errors a user causes (a full or read-only disk, missing permissions, a quota, a
too-long name) as one clear sentence naming the path and the cause, instead of "internal error".

`describe(exc, where=...)` returns that sentence, or None for an OSError that is not one of these
(then it stays a bug report). The CLI uses it for every command; code that handles one patient at a
time can use it to tell a full disk from a bad patient.
"""

from __future__ import annotations

import errno

# errno -> (cause, what to do)
USER_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space or choose an output folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or choose an output folder elsewhere"),
    errno.EROFS: ("read-only file system", "choose an output folder on a writable disk"),
    errno.EACCES: ("permission denied", "check the permissions of the folder or choose another one"),
    errno.EPERM: ("operation not permitted", "check the permissions of the folder or choose another one"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter output path (or shorter patient ids)"),
}


def is_user_os_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in USER_OS_ERRORS


def describe(exc: BaseException, *, where: str | None = None) -> str | None:
    """'PATH: cause (ENAME); what to do', or None when exc is not an OS error a user causes.

    where: the output the command was writing, named when the error carries no file name."""
    if not is_user_os_error(exc):
        return None
    cause, hint = USER_OS_ERRORS[exc.errno]
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    if exc.filename is not None:
        return f"{exc.filename}: {cause} ({name}); {hint}"
    return f"{cause} ({name}){f' while writing {where}' if where else ''}; {hint}"
