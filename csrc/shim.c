/*
 * pyrunc's kernel shim: thin wrappers for the system calls Python's os module lacks.
 *
 * Every function returns what the kernel returned (-1 with errno set on failure); the Python side
 * (pyrunc/linux/syscalls.py) turns errors into exceptions. Nothing here makes decisions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef SYS_pivot_root
#define SYS_pivot_root __NR_pivot_root
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_sched_setattr
#define __NR_sched_setattr 314
#endif
#ifndef __NR_ioprio_set
#define __NR_ioprio_set 251
#endif
#ifndef __NR_set_mempolicy
#define __NR_set_mempolicy 238
#endif
#ifndef __NR_bpf
#define __NR_bpf 321
#endif

int pyrunc_unshare(int flags) { return unshare(flags); }
int pyrunc_setns(int fd, int nstype) { return setns(fd, nstype); }

int pyrunc_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
                 const char *data) {
    return mount(source, target, fstype, flags, data);
}
int pyrunc_umount2(const char *target, int flags) { return umount2(target, flags); }
int pyrunc_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int pyrunc_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int pyrunc_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

int pyrunc_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}

int pyrunc_capget(uint32_t version, int pid, uint32_t *data /* 6 words */) {
    struct __user_cap_header_struct hdr = {version, pid};
    return (int)syscall(SYS_capget, &hdr, data);
}
int pyrunc_capset(uint32_t version, int pid, const uint32_t *data /* 6 words */) {
    struct __user_cap_header_struct hdr = {version, pid};
    return (int)syscall(SYS_capset, &hdr, data);
}

struct pyrunc_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
int pyrunc_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct pyrunc_open_how how = {flags, mode, resolve};
    return (int)syscall(__NR_openat2, dirfd, path, &how, sizeof(how));
}

struct pyrunc_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};
int pyrunc_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set,
                         uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd) {
    struct pyrunc_mount_attr attr = {attr_set, attr_clr, propagation, userns_fd};
    return (int)syscall(__NR_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}
int pyrunc_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(__NR_open_tree, dirfd, path, flags);
}
int pyrunc_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                      unsigned int flags) {
    return (int)syscall(__NR_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}
int pyrunc_fsopen(const char *fsname, unsigned int flags) {
    return (int)syscall(__NR_fsopen, fsname, flags);
}
int pyrunc_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux) {
    return (int)syscall(__NR_fsconfig, fd, cmd, key, value, aux);
}
int pyrunc_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
    return (int)syscall(__NR_fsmount, fd, flags, attr_flags);
}

int pyrunc_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(__NR_close_range, first, last, flags);
}

int pyrunc_personality(unsigned long persona) { return (int)syscall(SYS_personality, persona); }

/* attr points at a struct sched_attr laid out by the caller (size in its first word). */
int pyrunc_sched_setattr(int pid, void *attr, unsigned int flags) {
    return (int)syscall(__NR_sched_setattr, pid, attr, flags);
}
int pyrunc_ioprio_set(int which, int who, int ioprio) {
    return (int)syscall(__NR_ioprio_set, which, who, ioprio);
}
int pyrunc_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode) {
    return (int)syscall(__NR_set_mempolicy, mode, nodemask, maxnode);
}
#ifndef __NR_seccomp
#define __NR_seccomp 317
#endif
/* Loads a classic-BPF filter (8-byte sock_filter entries) with seccomp(2)'s flags, which
 * libseccomp cannot always pass (WAIT_KILLABLE_RECV). Returns the notify fd when asked for one. */
int pyrunc_seccomp_set_filter(unsigned int flags, const void *filter, unsigned short len) {
    struct {
        unsigned short len;
        const void *filter;
    } prog = {len, filter};
    return (int)syscall(__NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, flags, &prog);
}
/* seccomp(2) with no program at all: the kernel checks the flags first (EINVAL for one it does
 * not know) and only then reads the program (EFAULT). Nothing is ever installed. */
int pyrunc_seccomp_probe_flags(unsigned int flags) {
    return (int)syscall(__NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, flags, NULL);
}
long pyrunc_keyctl(int cmd, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return syscall(SYS_keyctl, cmd, a2, a3, a4, a5);
}
/* attr points at a union bpf_attr laid out by the caller. */
long pyrunc_bpf(int cmd, void *attr, unsigned int size) {
    return syscall(__NR_bpf, cmd, attr, size);
}
