/* shm.c - creating and attaching the shared region (see shm.h).
 *
 * Signal context: PARTLY. create and describe_host use raw system calls only
 * and run in the crash handler when a crash is the first event of a process.
 */
#include "shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assafe.h"

#include <stdatomic.h>

#include <sys/syscall.h>

void *tattle__shm_reserve(void)
{
    /* Raw: it may run in the crash handler (the first use). */
    long p = tattle__raw_syscall6(SYS_mmap, 0, (long)sizeof(struct tattle_shm), PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p < 0 && p > -4096 ? NULL : (void *)p;
}

/* Never the same twice in a process, nor (with the pid and the clock) in
 * a forked child. Signal-safe. */
static uint64_t next_ring_id(void)
{
    static _Atomic uint64_t made;
    return (tattle__now_realtime_ns() ^ ((uint64_t)tattle__sys_getpid() << 40)) + atomic_fetch_add(&made, 1) + 1;
}

struct tattle_shm *tattle__shm_create(int *fdp, void *at)
{
    int fd = tattle__sys_memfd_create("tattle", 1u /* MFD_CLOEXEC */);
    void *p;
    struct tattle_shm *shm;
    if (fd < 0)
        return NULL;
    fd = tattle__fd_move_high(fd);
    if (ftruncate(fd, (off_t)sizeof(struct tattle_shm)) != 0) {
        close(fd);
        return NULL;
    }
    /* Over the reservation: replacing it needs no new address space. */
    p = mmap(at, sizeof(struct tattle_shm), PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    shm = p;
    shm->ring.id = next_ring_id();
    shm->size = sizeof *shm;
    shm->version = TATTLE_SHM_VERSION;
    shm->magic = TATTLE_SHM_MAGIC;
    *fdp = fd;
    return shm;
}

void tattle__shm_describe_host(struct tattle_shm *shm)
{
    ssize_t n;
    shm->host_pid = tattle__sys_getpid();
    shm->host_ppid = getppid();
    n = readlink("/proc/self/exe", shm->exe, sizeof shm->exe - 1);
    shm->exe[n > 0 ? n : 0] = 0;
    shm->cmdline_len = (uint32_t)tattle__read_file("/proc/self/cmdline", shm->cmdline, sizeof shm->cmdline - 1);
    shm->cmdline[shm->cmdline_len] = 0;
}

struct tattle_shm *tattle__shm_attach(int fd)
{
    struct stat st;
    struct tattle_shm *shm;
    void *p;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != sizeof(struct tattle_shm))
        return NULL;
    p = mmap(NULL, sizeof(struct tattle_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    shm = p;
    if (shm->magic != TATTLE_SHM_MAGIC || shm->version != TATTLE_SHM_VERSION) {
        munmap(p, sizeof *shm);
        return NULL;
    }
    return shm;
}
