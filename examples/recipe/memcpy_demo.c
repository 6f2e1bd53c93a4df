/* memcpy-demo: links glibc for memcpy (memcpy@GLIBC_2.14 on x86_64), write and _exit, with its
 * own _start so no __libc_start_main@GLIBC_2.34 is needed: it runs on glibc >= 2.14 (RHEL 7
 * and later) and not on RHEL 6's glibc 2.12 — exactly what the audit must catch. */
#include <string.h>
#include <unistd.h>

static char buf[64];

int main(void) {
    const char msg[] = "memcpy-demo: copied with memcpy@GLIBC_2.14\n";
    volatile size_t n = sizeof msg - 1;
    memcpy(buf, msg, n);
    write(1, buf, n);
    return 0;
}

__asm__(
    ".text\n.global _start\n_start:\n"
    "  xor %rbp, %rbp\n"
    "  and $-16, %rsp\n"
    "  call main\n"
    "  mov %eax, %edi\n"
    "  call _exit\n");
