/* signames.h - names and descriptions of signals and their si_codes.
 *
 * Owns: "SIGSEGV", "Segmentation fault", "SEGV_MAPERR" and friends, as the
 * flusher writes them into events and reports.
 * Signal context: NO (flusher only), though the tables are plain data.
 */
#ifndef TATTLE_SIGNAMES_H
#define TATTLE_SIGNAMES_H

const char *tattle__signal_name(int sig);        /* "SIGSEGV", "SIG?" */
const char *tattle__signal_description(int sig); /* "Segmentation fault" */
const char *tattle__si_code_name(int sig, int code); /* "SEGV_MAPERR", "SI_TKILL", NULL */
int tattle__si_code_has_address(int sig, int code);  /* si_addr is meaningful */

#endif
