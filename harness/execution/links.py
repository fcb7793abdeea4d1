"""Links and other special files that agent-written code leaves in a workspace.

The harness and aider are not sandboxed: they read and write workspace files with the
user's rights. A link planted by a run (experiment.py -> /etc/passwd, run_1/meta.json ->
~/.bashrc, notes.txt -> a key file) would make them read or write outside the workspace
the next time they touch that path, and a FIFO would make them hang. Runs may therefore
leave only regular files (with one name) and folders: once a run has ended, and before
every stage, anything else is found here and removed by the workspace (never followed).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"))


def describe(path: Path) -> str | None:
    """What a special file is ('link to /etc/passwd'), or None for a regular file or folder."""
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return f"link to {os.readlink(path)}"
    if stat.S_ISREG(mode) and st.st_nlink > 1:
        # a second name of a file that may live outside (the namespace sandbox makes these
        # impossible across its mounts; the process level does not)
        return f"a hard link ({st.st_nlink} names)"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def find_special(root: Path) -> list[tuple[str, str]]:
    """(path relative to root, what it is) for each special file; .git is git's business."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not enter linked folders
        base = Path(dirpath)
        if base == root and ".git" in dirnames:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            p = base / name
            try:
                what = describe(p)
            except FileNotFoundError:
                continue
            if what:
                out.append((str(p.relative_to(root)), what))
    return sorted(out)
