/* libhello: a shared library with no libc dependency at all, so it loads on any x86_64 Linux
 * (glibc 2.12 included). Built with -nostdlib; talks to the kernel directly. */
static long sys_write(int fd, const void *buf, unsigned long len) {
    long ret;
    __asm__ volatile ("syscall" : "=a"(ret) : "a"(1), "D"(fd), "S"(buf), "d"(len) : "rcx", "r11", "memory");
    return ret;
}

unsigned long hello_strlen(const char *s) {
    unsigned long n = 0;
    while (s[n]) n++;
    return n;
}

void hello_puts(const char *s) {
    sys_write(1, s, hello_strlen(s));
    sys_write(1, "\n", 1);
}

const char *hello_message(void) {
    return "Hello from libhello 1.0";
}
