/* reaped.h - what killed the last child this process reaped.
 *
 * Owns: the waitpid() and wait() interposers. A wrapper that reaps a
 * child killed by a signal and then re-raises that signal on itself
 * (timeout, sudo, unshare -f, shells) is not a second crash: the child's
 * own report is the report.
 * Signal context: YES. The interposers may run in a SIGCHLD handler; they
 * call libc's own entry points and store two words.
 */
#ifndef TATTLE_REAPED_H
#define TATTLE_REAPED_H

/* Did this process reap, in the last few seconds, a child killed by sig? */
int tattle__reaped_killed_by(int sig);

#endif
