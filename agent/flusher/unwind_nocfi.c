/* unwind_nocfi.c - one step up the stack where there is no CFI (see
 * unwind_nocfi.h).
 *
 * Signal context: NO (flusher only).
 */
#include "unwind_nocfi.h"

#include <elfutils/libdw.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define SCAN_BYTES 4096 /* how far above the stack pointer a return address is looked for */

int tattle__nocfi_has_cfi(Dwfl *dwfl, uint64_t pc, int activation)
{
    uint64_t lookup = activation ? pc : pc - 1;
    Dwfl_Module *mod = dwfl_addrmodule(dwfl, lookup);
    Dwarf_Addr bias;
    Dwarf_CFI *cfi;
    Dwarf_Frame *frame;
    if (!mod)
        return 0;
    if ((cfi = dwfl_module_eh_cfi(mod, &bias)) != NULL && dwarf_cfi_addrframe(cfi, lookup - bias, &frame) == 0) {
        free(frame);
        return 1;
    }
    if ((cfi = dwfl_module_dwarf_cfi(mod, &bias)) != NULL && dwarf_cfi_addrframe(cfi, lookup - bias, &frame) == 0) {
        free(frame);
        return 1;
    }
    return 0;
}

/* Does ret follow a call, of callee (when known) or through a pointer? */
static int after_call(Dwfl *dwfl, const struct tattle_nocfi_mem *mem, uint64_t ret, uint64_t callee)
{
    unsigned char b[7];
    int32_t rel;
    if (ret < 8 || !dwfl_addrmodule(dwfl, ret - 1) || !mem->read(mem->arg, ret - 7, b, sizeof b))
        return 0;
    if (b[2] == 0xe8) { /* call rel32 */
        memcpy(&rel, b + 3, 4);
        return !callee || ret + (uint64_t)(int64_t)rel == callee;
    }
    /* call *%reg, *disp8(%reg), *disp32(%reg) / *disp32(%rip) */
    return (b[5] == 0xff && (b[6] & 0xf8) == 0xd0) || (b[4] == 0xff && (b[5] & 0xf8) == 0x50) ||
           (b[1] == 0xff && ((b[2] & 0xf8) == 0x90 || b[2] == 0x15));
}

/* The first word above the stack pointer that is a return address from a
 * call of callee: what the call pushed, where the callee kept no frame. */
static int scan_for_return(Dwfl *dwfl, const struct tattle_nocfi_mem *mem, uint64_t *g, uint64_t callee)
{
    uint64_t a, w;
    for (a = g[REG_RSP]; a < g[REG_RSP] + SCAN_BYTES; a += 8) {
        if (!mem->read(mem->arg, a, &w, sizeof w))
            return 0;
        if (after_call(dwfl, mem, w, callee)) {
            g[REG_RIP] = w;
            g[REG_RSP] = a + 8;
            return 1;
        }
    }
    return 0;
}

int tattle__nocfi_step(Dwfl *dwfl, const struct tattle_nocfi_mem *mem, uint64_t *g, int activation)
{
    uint64_t pc = g[REG_RIP], lookup = activation ? pc : pc - 1, start, w[2];
    Dwfl_Module *mod = dwfl_addrmodule(dwfl, lookup);
    GElf_Off off = 0;
    GElf_Sym sym;
    unsigned char prologue[4];
    if (!mod) /* a wild pc: the call that got there left its return address */
        return mem->read(mem->arg, g[REG_RSP], w, 8) && after_call(dwfl, mem, w[0], 0) &&
               (g[REG_RIP] = w[0], g[REG_RSP] += 8, 1);
    if (!dwfl_module_addrinfo(mod, lookup, &off, &sym, NULL, NULL, NULL))
        return scan_for_return(dwfl, mem, g, 0);
    start = lookup - off;
    /* push %rbp; mov %rsp,%rbp: a frame pointer function, as gdb's
     * prologue analysis reads it. */
    if (mem->read(mem->arg, start, prologue, sizeof prologue) && prologue[0] == 0x55 && prologue[1] == 0x48 &&
        prologue[2] == 0x89 && prologue[3] == 0xe5) {
        if (pc == start)
            return mem->read(mem->arg, g[REG_RSP], w, 8) && (g[REG_RIP] = w[0], g[REG_RSP] += 8, 1);
        if (pc == start + 1)
            return mem->read(mem->arg, g[REG_RSP], w, 16) &&
                   (g[REG_RBP] = w[0], g[REG_RIP] = w[1], g[REG_RSP] += 16, 1);
        /* The saved return address must follow a call of this function
         * (the saved %rbp is the caller's, whatever it held). */
        if (!mem->read(mem->arg, g[REG_RBP], w, 16) || !after_call(dwfl, mem, w[1], start))
            return 0;
        g[REG_RSP] = g[REG_RBP] + 16;
        g[REG_RBP] = w[0];
        g[REG_RIP] = w[1];
        return 1;
    }
    /* No frame: the return address of a call to this very function. */
    return scan_for_return(dwfl, mem, g, start);
}
