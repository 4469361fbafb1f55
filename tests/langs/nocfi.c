/* nocfi.c - a crash four calls deep in code built without unwind tables
 * (test_langs.py builds it with and without frame pointers and removes
 * .debug_frame, so neither libdw nor gdb has CFI for it). */
#include <stdio.h>
static volatile int sink;
__attribute__((noinline)) void write_null(int *p) { *p = 42; sink++; }
__attribute__((noinline)) void level3(int *p) { write_null(p); sink++; }
__attribute__((noinline)) void level2(int *p) { level3(p); sink++; }
__attribute__((noinline)) void level1(int *p) { level2(p); sink++; }
int main(void) { level1(NULL); return 0; }
