/* procs.c - a host that makes processes and watches its descriptors, so a
 * run under the agent can be compared with a plain run, byte for byte.
 *   reap             captures an event, forks three children (one exits 3,
 *                    one crashes, one captures), then wait()s until ECHILD
 *                    and prints what it reaped: only its own children
 *   spawn PROG ARG.. posix_spawn, waitpid, print the status
 *   vfork PROG ARG.. vfork + execv, waitpid, print the status
 *   vfork-crash      vfork, the child writes through NULL before any exec;
 *                    waitpid, print the status, then crash (the agent, not
 *                    yet used by this process, must still report this one)
 *   daemon FILE      daemon(1, 0), write the daemon's pid to FILE, crash
 *   fds              list descriptors, capture, list again (ours are
 *                    close-on-exec and above the host's), fork: the child
 *                    lists, exec: the new image lists
 *   closefrom-crash  capture, close every descriptor above 2 (as daemons
 *                    do), capture again, then crash
 * Built against tattle.h alone: without the agent every capture is a no-op.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tattle.h"

extern char **environ;

__attribute__((noinline)) static void write_null(void)
{
    *(volatile int *)0 = 1;
}

static void describe_status(const char *who, int status)
{
    if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", who, WTERMSIG(status));
    else
        printf("%s: exited %d\n", who, WEXITSTATUS(status));
    fflush(stdout);
}

/* Prints in child order, not reaping order (which is timing). */
static int reap(void)
{
    pid_t kids[3];
    int i, status, reaped = 0, strangers = 0, statuses[3] = {-1, -1, -1};
    pid_t pid;
    tattle_capture("reaper started", NULL);
    fflush(stdout);
    for (i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            if (i == 0)
                _exit(3);
            if (i == 1)
                write_null();
            tattle_capture("child event", NULL);
            tattle_flush(5000);
            _exit(0);
        }
    }
    while ((pid = wait(&status)) > 0 || errno == EINTR) {
        int known = 0;
        if (pid <= 0)
            continue;
        for (i = 0; i < 3; i++)
            if (kids[i] == pid) {
                statuses[i] = status;
                known = 1;
            }
        strangers += !known;
        reaped++;
    }
    printf("reaped %d, then %s\n", reaped, errno == ECHILD ? "ECHILD" : strerror(errno));
    for (i = 0; i < 3; i++) {
        char who[16];
        snprintf(who, sizeof who, "child %d", i);
        describe_status(who, statuses[i]);
    }
    printf("strangers: %d\n", strangers);
    return 0;
}

static int spawn(char **argv)
{
    pid_t pid;
    int status, err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (err) {
        printf("posix_spawn: %s\n", strerror(err));
        return 1;
    }
    waitpid(pid, &status, 0);
    describe_status("spawned", status);
    return 0;
}

static int vfork_exec(char **argv)
{
    int status;
    pid_t pid = vfork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    describe_status("vforked", status);
    return 0;
}

static int vfork_crash(void)
{
    int status;
    pid_t pid = vfork();
    if (pid == 0) {
        *(volatile int *)0 = 1;
        _exit(127);
    }
    waitpid(pid, &status, 0);
    describe_status("vforked", status);
    fflush(stdout);
    *(volatile int *)0 = 2;
    return 0;
}

static int become_daemon(const char *pid_file)
{
    FILE *f;
    if (daemon(1, 0) != 0) {
        perror("daemon");
        return 1;
    }
    f = fopen(pid_file, "w");
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    write_null();
    return 0;
}

/* Every open descriptor but the directory's own, with its flags. */
static void list_fds(const char *when)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    printf("%s:", when);
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        printf(" %d%s", fd, (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? "(cloexec)" : "");
    }
    if (d)
        closedir(d);
    printf("\n");
    fflush(stdout);
}

/* Descriptors the agent added: each must be close-on-exec. */
static int fds(const char *self)
{
    pid_t pid;
    int status;
    list_fds("before");
    tattle_capture("fds", NULL);
    tattle_flush(5000);
    list_fds("after capture");
    pid = fork();
    if (pid == 0) {
        list_fds("forked child");
        execl(self, self, "list", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    describe_status("child", status);
    return 0;
}

static int closefrom_crash(void)
{
    tattle_capture("before closing", NULL);
    tattle_flush(5000);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    tattle_capture("after closing", NULL);
    tattle_flush(5000);
    write_null();
    return 0;
}

int main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (!strcmp(verb, "reap"))
        return reap();
    if (!strcmp(verb, "spawn") && argc > 2)
        return spawn(argv + 2);
    if (!strcmp(verb, "vfork") && argc > 2)
        return vfork_exec(argv + 2);
    if (!strcmp(verb, "vfork-crash"))
        return vfork_crash();
    if (!strcmp(verb, "daemon") && argc > 2)
        return become_daemon(argv[2]);
    if (!strcmp(verb, "fds"))
        return fds(argv[0]);
    if (!strcmp(verb, "list")) {
        list_fds("after exec");
        return 0;
    }
    if (!strcmp(verb, "closefrom-crash"))
        return closefrom_crash();
    fprintf(stderr, "usage: procs reap|spawn PROG..|vfork PROG..|vfork-crash|daemon FILE|fds|closefrom-crash\n");
    return 2;
}
