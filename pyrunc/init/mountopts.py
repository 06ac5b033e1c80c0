"""config.json mount `options` -> mount(2) flags, propagation, recursive attributes and fs data.

The table is the kernel's vocabulary as runc accepts it (`runc features` lists the same names);
anything not in it is filesystem data, passed through verbatim.
"""
from __future__ import annotations

from pyrunc.linux import syscalls as sc

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID), "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV), "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC), "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC), "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME), "atime": (True, sc.MS_NOATIME),
    "nodiratime": (False, sc.MS_NODIRATIME), "diratime": (True, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW), "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "acl": (False, 1 << 16), "noacl": (True, 1 << 16),  # MS_POSIXACL
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),  # MS_I_VERSION
    "silent": (False, sc.MS_SILENT), "loud": (True, sc.MS_SILENT),
    "defaults": (False, 0),
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# recursive attributes, applied with mount_setattr(AT_RECURSIVE): option -> (clear?, attr)
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}
# atime attributes are one field, not bits: setting one clears the others
RECURSIVE_ATIME: dict[str, int] = {
    "rrelatime": sc.MOUNT_ATTR_RELATIME, "rnorelatime": sc.MOUNT_ATTR_STRICTATIME,
    "rnoatime": sc.MOUNT_ATTR_NOATIME, "ratime": sc.MOUNT_ATTR_RELATIME,
    "rstrictatime": sc.MOUNT_ATTR_STRICTATIME, "rnostrictatime": sc.MOUNT_ATTR_RELATIME,
}

# pyrunc-level options that are neither flags nor data
EXTENSIONS = {"tmpcopyup", "idmap", "ridmap"}


class MountOptions:
    """What one mount's options mean (a plain class: dataclasses is slow to import)."""

    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.data: list[str] = []
        self.extensions: set[str] = set()

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse(options: list[str] | None) -> MountOptions:
    out = MountOptions()
    for opt in options or []:
        if opt in FLAGS:
            clear, flag = FLAGS[opt]
            out.flags = out.flags & ~flag if clear else out.flags | flag
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE:
            clear, attr = RECURSIVE[opt]
            if clear:
                out.attr_clr |= attr
                out.attr_set &= ~attr
            else:
                out.attr_set |= attr
                out.attr_clr &= ~attr
        elif opt in RECURSIVE_ATIME:
            out.attr_clr |= sc.MOUNT_ATTR__ATIME
            out.attr_set = (out.attr_set & ~sc.MOUNT_ATTR__ATIME) | RECURSIVE_ATIME[opt]
        elif opt in EXTENSIONS:
            out.extensions.add(opt)
        else:
            out.data.append(opt)
    return out
