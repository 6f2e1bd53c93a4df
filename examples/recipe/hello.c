/* hello: a dynamically linked executable that needs only libhello.so.1 (found through
 * RUNPATH $ORIGIN/../lib) and no glibc symbol versions. It embeds the build prefix as a
 * NUL-terminated string (a binary prefix placeholder in the conda package), so relocation of
 * binary files is exercised end to end: `hello --prefix` prints where it thinks it lives. */
void hello_puts(const char *s);
const char *hello_message(void);

/* Replaced at install time by the prefix, padded with NULs (conda's binary mode). */
static const char prefix[] __attribute__((used)) =
    "/opt/envship-build/_h_env_placehold_placehold_placehold_placehold_placehold_placehold"
    "_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placehold"
    "_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placeho";

static void sys_exit(int code) {
    __asm__ volatile ("syscall" : : "a"(231), "D"(code) : "memory");
    for (;;) {}
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

int main(int argc, char **argv) {
    if (argc > 1 && streq(argv[1], "--prefix")) {
        hello_puts(prefix);
        return 0;
    }
    hello_puts(hello_message());
    return 0;
}

__asm__(
    ".text\n.global _start\n_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov (%rsp), %rdi\n"      /* argc */
    "  lea 8(%rsp), %rsi\n"     /* argv */
    "  and $-16, %rsp\n"
    "  call main\n"
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n"        /* exit_group */
    "  syscall\n");

void unused_exit(void) { sys_exit(0); }
