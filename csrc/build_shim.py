"""Builds pyrunc._shim (cffi API mode): the declarations here are the whole C surface Python sees."""
from pathlib import Path

from cffi import FFI

CDEF = """
int pyrunc_unshare(int flags);
int pyrunc_setns(int fd, int nstype);
int pyrunc_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
                 const char *data);
int pyrunc_umount2(const char *target, int flags);
int pyrunc_pivot_root(const char *new_root, const char *put_old);
int pyrunc_sethostname(const char *name, size_t len);
int pyrunc_setdomainname(const char *name, size_t len);
int pyrunc_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int pyrunc_capget(uint32_t version, int pid, uint32_t *data);
int pyrunc_capset(uint32_t version, int pid, const uint32_t *data);
int pyrunc_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int pyrunc_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set,
                         uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd);
int pyrunc_open_tree(int dirfd, const char *path, unsigned int flags);
int pyrunc_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                      unsigned int flags);
int pyrunc_fsopen(const char *fsname, unsigned int flags);
int pyrunc_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux);
int pyrunc_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
int pyrunc_close_range(unsigned int first, unsigned int last, unsigned int flags);
int pyrunc_personality(unsigned long persona);
int pyrunc_sched_setattr(int pid, void *attr, unsigned int flags);
int pyrunc_ioprio_set(int which, int who, int ioprio);
int pyrunc_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
long pyrunc_bpf(int cmd, void *attr, unsigned int size);
int pyrunc_seccomp_set_filter(unsigned int flags, const void *filter, unsigned short len);
int pyrunc_seccomp_probe_flags(unsigned int flags);
long pyrunc_keyctl(int cmd, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pyrunc._shim",
    (Path(__file__).parent / "shim.c").read_text(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
