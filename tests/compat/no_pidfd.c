/* no_pidfd.c - run a program where pidfd_open(2) fails with ENOSYS, as on
 * Linux < 5.3, under valgrind, or under a container's seccomp profile that
 * predates the call (those answer EPERM: pass "eperm" first).
 *   no_pidfd [eperm] PROG ARG... */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
int main(int argc, char **argv)
{
    int err = ENOSYS, first = 1;
    if (argc > 1 && !strcmp(argv[1], "eperm"))
        err = EPERM, first = 2;
    struct sock_filter rules[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof rules / sizeof rules[0], rules};
    if (argc <= first || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "usage: no_pidfd [eperm] PROG ARG...\n");
        return 2;
    }
    execv(argv[first], argv + first);
    perror("no_pidfd: execv");
    return 127;
}
