/* bad_rbp.c - a crash at a pc without CFI with rbp near 2^64 (review
 * finding 9): the unwinder's frame-pointer fallback reads [rbp+8], an
 * address whose end wraps. It must be reported like any crash.
 *
 *   bad_rbp [RBP]     (default 0xfffffffffffffff0)
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long rbp = argc > 1 ? strtoul(argv[1], NULL, 0) : 0xfffffffffffffff0UL;
    printf("jumping to 0x1000 with rbp %#lx\n", rbp);
    fflush(stdout);
    __asm__ volatile("mov %0, %%rbp\n\tmov $0x1000, %%rax\n\tjmp *%%rax" ::"r"(rbp) : "rax", "memory");
    return 0;
}
