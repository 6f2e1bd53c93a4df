/*
 * seccomp-2.6.32: run a command as if on Linux 2.6.32 (RHEL 6's kernel): every x86_64 system call
 * added after 2.6.32 answers ENOSYS, as it would there.
 *
 *   seccomp-2.6.32 COMMAND [ARG...]   install the filter, then exec COMMAND (inherited by all
 *                                     its children; it cannot be lifted)
 *   seccomp-2.6.32 --list             print the blocked calls (number and name) and exit
 *
 * x86_64 numbers system calls in the order they were added: 2.6.32's table ends at 298
 * (perf_event_open); 299 (recvmmsg) came with 2.6.33, and everything since has a higher number
 * (renameat2 316, getrandom 318, memfd_create 319, execveat 322, membarrier 324,
 * copy_file_range 326, statx 332, rseq 334, pidfd_open 434, clone3 435, close_range 436,
 * openat2 437, faccessat2 439, ...). So the filter blocks every number from 299 to 511; 512 and
 * up are the x32 ABI's, which the kernel already refuses to a 64-bit process.
 *
 * Build: gcc -O2 -o seccomp-2.6.32 seccomp-2.6.32.c -lseccomp   (libseccomp-dev; add -static to
 * copy it into a chroot).
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_AFTER_2_6_32 299
#define LAST_X86_64 511

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...] | --list\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "--list") == 0) {
        for (int nr = FIRST_AFTER_2_6_32; nr <= LAST_X86_64; nr++) {
            char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
            if (name) {
                printf("%d %s\n", nr, name);
                free(name);
            }
        }
        return 0;
    }
    if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
        fprintf(stderr, "seccomp-2.6.32: only x86_64 is supported\n");
        return 2;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        fprintf(stderr, "seccomp-2.6.32: seccomp_init failed\n");
        return 1;
    }
    for (int nr = FIRST_AFTER_2_6_32; nr <= LAST_X86_64; nr++) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
        if (rc < 0) {
            fprintf(stderr, "seccomp-2.6.32: blocking system call %d: %s\n", nr, strerror(-rc));
            return 1;
        }
    }
    int rc = seccomp_load(ctx);
    if (rc < 0) {
        fprintf(stderr, "seccomp-2.6.32: loading the filter: %s\n", strerror(-rc));
        return 1;
    }
    seccomp_release(ctx);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "seccomp-2.6.32: cannot run %s: %s\n", argv[1], strerror(errno));
    return 127;
}
