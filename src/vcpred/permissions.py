"""The modes of what vcpred writes: those a plain mkdir/open gives under the user's umask.

tempfile's mkdtemp (0700) and mkstemp (0600), and safetensors' save_file (0600), make private files
whatever the umask: a model exported by one account could not be read by a colleague or a service
account the umask would let in. Whatever vcpred writes through them gets its plain mode back here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only be read by
    setting it, which another thread could see for an instant)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(path: Path, *, umask: int | None = None) -> None:
    """Give a folder 0777, a file 0666 (execute bits kept), less the umask; a link is left alone."""
    mask = current_umask() if umask is None else umask
    found = os.lstat(path)
    if stat.S_ISLNK(found.st_mode):
        return
    if stat.S_ISDIR(found.st_mode):
        wanted = 0o777
    else:
        wanted = 0o666 | (stat.S_IMODE(found.st_mode) & 0o111)
    if stat.S_IMODE(found.st_mode) != wanted & ~mask:
        os.chmod(path, wanted & ~mask)


def plain_modes(folder: Path) -> None:
    """plain_mode for folder and everything under it (links are not followed)."""
    mask = current_umask()
    plain_mode(folder, umask=mask)
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            plain_mode(Path(root, name), umask=mask)
