/* hello.c - a small dynamically linked C program for bench_startup. */
#include <stdio.h>

int main(void)
{
    printf("hello\n");
    return 0;
}
