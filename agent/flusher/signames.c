/* signames.c - signal and si_code names (see signames.h).
 *
 * Signal context: NO.
 */
#include "signames.h"

#include <signal.h>
#include <stddef.h>

struct code_name { int sig, code; const char *name; };

static const struct code_name codes[] = {
    {SIGSEGV, SEGV_MAPERR, "SEGV_MAPERR"}, {SIGSEGV, SEGV_ACCERR, "SEGV_ACCERR"},
#ifdef SEGV_BNDERR
    {SIGSEGV, SEGV_BNDERR, "SEGV_BNDERR"},
#endif
#ifdef SEGV_PKUERR
    {SIGSEGV, SEGV_PKUERR, "SEGV_PKUERR"},
#endif
    {SIGBUS, BUS_ADRALN, "BUS_ADRALN"},    {SIGBUS, BUS_ADRERR, "BUS_ADRERR"},
    {SIGBUS, BUS_OBJERR, "BUS_OBJERR"},    {SIGBUS, BUS_MCEERR_AR, "BUS_MCEERR_AR"},
    {SIGBUS, BUS_MCEERR_AO, "BUS_MCEERR_AO"},
    {SIGILL, ILL_ILLOPC, "ILL_ILLOPC"},    {SIGILL, ILL_ILLOPN, "ILL_ILLOPN"},
    {SIGILL, ILL_ILLADR, "ILL_ILLADR"},    {SIGILL, ILL_ILLTRP, "ILL_ILLTRP"},
    {SIGILL, ILL_PRVOPC, "ILL_PRVOPC"},    {SIGILL, ILL_PRVREG, "ILL_PRVREG"},
    {SIGILL, ILL_COPROC, "ILL_COPROC"},    {SIGILL, ILL_BADSTK, "ILL_BADSTK"},
    {SIGFPE, FPE_INTDIV, "FPE_INTDIV"},    {SIGFPE, FPE_INTOVF, "FPE_INTOVF"},
    {SIGFPE, FPE_FLTDIV, "FPE_FLTDIV"},    {SIGFPE, FPE_FLTOVF, "FPE_FLTOVF"},
    {SIGFPE, FPE_FLTUND, "FPE_FLTUND"},    {SIGFPE, FPE_FLTRES, "FPE_FLTRES"},
    {SIGFPE, FPE_FLTINV, "FPE_FLTINV"},    {SIGFPE, FPE_FLTSUB, "FPE_FLTSUB"},
    {SIGTRAP, TRAP_BRKPT, "TRAP_BRKPT"},   {SIGTRAP, TRAP_TRACE, "TRAP_TRACE"},
    {SIGSYS, 1, "SYS_SECCOMP"},
};

const char *tattle__signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    default: return "SIG?";
    }
}

const char *tattle__signal_description(int sig)
{
    switch (sig) {
    case SIGSEGV: return "Segmentation fault";
    case SIGBUS: return "Bus error";
    case SIGILL: return "Illegal instruction";
    case SIGFPE: return "Floating point exception";
    case SIGABRT: return "Aborted";
    case SIGTRAP: return "Trace/breakpoint trap";
    case SIGSYS: return "Bad system call";
    default: return "Unknown signal";
    }
}

const char *tattle__si_code_name(int sig, int code)
{
    size_t i;
    switch (code) {
    case SI_USER: return "SI_USER";
    case SI_KERNEL: return "SI_KERNEL";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_TIMER: return "SI_TIMER";
    case SI_MESGQ: return "SI_MESGQ";
    case SI_ASYNCIO: return "SI_ASYNCIO";
    case SI_SIGIO: return "SI_SIGIO";
    case SI_TKILL: return "SI_TKILL";
    }
    if (code > 0)
        for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
            if (codes[i].sig == sig && codes[i].code == code)
                return codes[i].name;
    return NULL;
}

int tattle__si_code_has_address(int sig, int code)
{
    if (code <= 0 || code == SI_KERNEL)
        return 0;
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP;
}
