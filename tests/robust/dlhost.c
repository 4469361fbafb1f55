/* dlhost.c - a C host that dlopens a C++ plugin, then corrupts its heap
 * (review finding 2). glibc aborts ("malloc(): corrupted top size") while
 * it holds the arena lock; a crash handler that calls into libstdc++ then
 * allocates its dynamic TLS with malloc and waits on that lock forever.
 *
 *   dlhost plugin   dlopen librobust_plugin.so (beside this program), let it
 *                   throw and catch, then corrupt the heap in a new thread
 *   dlhost plain    the same without the plugin
 * It must die by SIGABRT, as it does without the agent.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *worker(void *a)
{
    (void)a;
    /* Takes the chunk the agent's pthread_create trampoline freed into this
     * thread's tcache, so that the next one comes from the top chunk. */
    void *volatile drain = malloc(24);
    char *p = malloc(24); /* thread arena; the top chunk right after it */
    void *q;
    (void)drain;
    ((volatile uint64_t *)p)[3] = 0xffffffffffff0; /* overflow into the top size */
    __asm__ volatile("" ::"r"(p) : "memory");
    q = malloc(2000); /* "malloc(): corrupted top size", under the arena lock */
    fprintf(stderr, "not reached %p\n", q);
    return NULL;
}

static void *open_plugin(void)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
    char *slash;
    if (n <= 0)
        return NULL;
    path[n] = 0;
    slash = strrchr(path, '/');
    strcpy(slash + 1, "librobust_plugin.so");
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

int main(int argc, char **argv)
{
    pthread_t t;
    if (argc > 1 && !strcmp(argv[1], "plugin")) {
        void *h = open_plugin();
        int (*f)(void) = h ? (int (*)(void))dlsym(h, "plugin_throw_and_catch") : NULL;
        if (!f) {
            fprintf(stderr, "dlhost: %s\n", dlerror());
            return 2;
        }
        printf("plugin: loaded, caught=%d\n", f());
        fflush(stdout);
    }
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return 0;
}
