/* symbolize.h - addresses to functions, files and lines (flusher only).
 *
 * Owns: the libdw session over a process's modules (reported from a copy of
 * its /proc/PID/maps, so the host may already be gone), turning one address
 * into one frame per inlined layer (innermost first), C++ demangling, the
 * in_app decision, and the module facts PostHog's $debug_images needs.
 * Signal context: NO. Allocates freely.
 */
#ifndef TATTLE_SYMBOLIZE_H
#define TATTLE_SYMBOLIZE_H

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tattle_frame {
    uint64_t pc;          /* the instruction (crash site) or return address */
    uint64_t symbol_addr; /* start of the function, 0 if unknown */
    uint64_t image_addr;  /* load address of the module, 0 if unknown */
    char *function;       /* demangled, or NULL */
    char *file;           /* source file, or NULL */
    int line, column;
    const char *module;   /* path of the module (owned by the symbolizer), or NULL */
    int in_app;
    int inlined;          /* an inlined call inside the next (outer) frame */
    int signal_frame;     /* the kernel's signal return trampoline */
};

struct tattle_stack {
    struct tattle_frame *frames; /* innermost first */
    size_t n, cap;
    size_t truncated; /* frames beyond the cap that were dropped */
    size_t elided_at; /* frames[elided_at] follows the elided ones (with elided > 0) */
    uint64_t elided;  /* frames of a deep stack left out between its innermost and outermost */
};

struct tattle_image {
    const char *path;
    uint64_t start, end, vmaddr;
    unsigned char build_id[64];
    int build_id_len;
};

struct tattle_symbolizer;

/* From a copy of /proc/PID/maps. pid may be dead. NULL on failure. */
struct tattle_symbolizer *tattle__symbolizer_open(const char *maps, size_t len, pid_t pid);
void tattle__symbolizer_close(struct tattle_symbolizer *s);
Dwfl *tattle__symbolizer_dwfl(struct tattle_symbolizer *s);

/* Append the frames for one address. activation: pc is the faulting
 * instruction itself (not a return address). The agent's own frames are
 * skipped. */
void tattle__symbolize(struct tattle_symbolizer *s, uint64_t pc, int activation, struct tattle_stack *out);

/* The module containing pc. Returns 0, or -1 if none. */
int tattle__symbolizer_image(struct tattle_symbolizer *s, uint64_t pc, struct tattle_image *img);

/* The main executable's image (the module mapped from exe). */
int tattle__symbolizer_image_by_path(struct tattle_symbolizer *s, const char *path, struct tattle_image *img);

void tattle__stack_free(struct tattle_stack *st);

/* Close the sessions kept per module file (at exit, for leak checkers). */
void tattle__symbolizer_forget_files(void);

/* The ELF debug_id PostHog expects from a GNU build ID: its first 16 bytes
 * (zero padded) as a GUID whose first three fields are little-endian. */
void tattle__debug_id(const unsigned char *build_id, int len, char out[37]);

#endif
