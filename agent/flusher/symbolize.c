/* symbolize.c - libdw symbolization (see symbolize.h).
 *
 * A crash's own libdw session (its modules at its addresses) unwinds and
 * finds the module of each address. Names, files and lines come from a
 * second session per module file, kept across crashes and hosts (by build
 * ID, least recently used out): a storm of crashes of one program, each at
 * its own random base, decompresses and indexes libc's DWARF once, not once
 * per crash.
 *
 * Signal context: NO (flusher only).
 */
#include "symbolize.h"
#include "names.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct tattle_symbolizer {
    Dwfl *dwfl;
    Dwfl_Callbacks callbacks;
    char *debuginfo_path;
};

/* A module file's long-lived session: the "twin" of a module in a crash's
 * session, at another address. */
struct twin {
    char *path;
    unsigned char id[64];
    int id_len;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    uint64_t used;
};
#define TWINS 32
static struct twin twins[TWINS];
static uint64_t twin_clock;
static char *twin_debuginfo_path;
static const Dwfl_Callbacks twin_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &twin_debuginfo_path,
};

static void twin_drop(struct twin *t)
{
    if (t->dwfl)
        dwfl_end(t->dwfl);
    free(t->path);
    memset(t, 0, sizeof *t);
}

/* A session holding just the file at path; NULL unless its build ID is id. */
static struct twin *twin_open(struct twin *t, const char *path, const unsigned char *id, int len)
{
    const unsigned char *bits = NULL;
    GElf_Addr vaddr;
    Dwfl_Module *m;
    Dwfl *d = dwfl_begin(&twin_callbacks);
    if (!d)
        return NULL;
    dwfl_report_begin(d);
    m = dwfl_report_offline(d, path, path, -1);
    dwfl_report_end(d, NULL, NULL);
    if (!m || dwfl_module_build_id(m, &bits, &vaddr) != len || !bits || memcmp(bits, id, (size_t)len) != 0 ||
        !(t->path = strdup(path))) {
        dwfl_end(d);
        return NULL;
    }
    t->dwfl = d;
    t->mod = m;
    memcpy(t->id, id, (size_t)len);
    t->id_len = len;
    return t;
}

/* mod's twin, and delta: an address in mod is delta more than the same
 * place in the twin. NULL (use mod itself) without a build ID. */
static Dwfl_Module *twin_of(Dwfl_Module *mod, int64_t *delta)
{
    const unsigned char *bits = NULL;
    const char *path = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    GElf_Addr vaddr;
    Dwarf_Addr bias = 0, tbias = 0;
    struct twin *t = NULL, *lru = &twins[0];
    int len, i;
    if (!path || path[0] != '/' || !dwfl_module_getelf(mod, &bias))
        return NULL;
    len = dwfl_module_build_id(mod, &bits, &vaddr);
    if (len <= 0 || len > (int)sizeof twins[0].id || !bits)
        return NULL;
    for (i = 0; i < TWINS && !t; i++) {
        if (twins[i].dwfl && twins[i].id_len == len && !memcmp(twins[i].id, bits, (size_t)len) &&
            !strcmp(twins[i].path, path))
            t = &twins[i];
        else if (twins[i].used < lru->used)
            lru = &twins[i];
    }
    if (!t) {
        twin_drop(lru);
        if (!(t = twin_open(lru, path, bits, len)))
            return NULL;
    }
    t->used = ++twin_clock;
    if (!dwfl_module_getelf(t->mod, &tbias))
        return NULL;
    *delta = (int64_t)(bias - tbias);
    return t->mod;
}

static const char *const system_prefixes[] = {
    "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/", "[vdso]", "[vsyscall]", NULL,
};

/* A frame is the user's own code unless it comes from the system's
 * libraries (libc, ld.so, libstdc++, ...) or from tattle itself. The main
 * executable always counts as the user's, wherever it is installed. */
static int module_in_app(Dwfl_Module *mod)
{
    const char *path = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *base;
    int i;
    if (!path)
        return 0;
    base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strncmp(base, "libtattle", 9) || !strncmp(base, "ld-linux", 8) || !strncmp(base, "libc.so", 7))
        return 0;
    for (i = 0; system_prefixes[i]; i++)
        if (!strncmp(path, system_prefixes[i], strlen(system_prefixes[i])))
            return 0;
    return 1;
}

static int module_is_agent(Dwfl_Module *mod)
{
    const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    return base && !strncmp(base, "libtattle.so", 12);
}

struct tattle_symbolizer *tattle__symbolizer_open(const char *maps, size_t len, pid_t pid)
{
    struct tattle_symbolizer *s = calloc(1, sizeof *s);
    FILE *f;
    if (!s)
        return NULL;
    s->callbacks.find_elf = dwfl_linux_proc_find_elf;
    s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
    s->callbacks.debuginfo_path = &s->debuginfo_path;
    s->dwfl = dwfl_begin(&s->callbacks);
    if (!s->dwfl) {
        free(s);
        return NULL;
    }
    f = fmemopen((void *)maps, len, "r");
    if (!f) {
        tattle__symbolizer_close(s);
        return NULL;
    }
    dwfl_report_begin(s->dwfl);
    if (dwfl_linux_proc_maps_report(s->dwfl, f) != 0) {
        fclose(f);
        tattle__symbolizer_close(s);
        return NULL;
    }
    fclose(f);
    dwfl_report_end(s->dwfl, NULL, NULL);
    (void)pid;
    return s;
}

void tattle__symbolizer_close(struct tattle_symbolizer *s)
{
    if (!s)
        return;
    if (s->dwfl)
        dwfl_end(s->dwfl);
    free(s);
}

Dwfl *tattle__symbolizer_dwfl(struct tattle_symbolizer *s) { return s->dwfl; }

static struct tattle_frame *push(struct tattle_stack *st)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        struct tattle_frame *f = realloc(st->frames, cap * sizeof *f);
        if (!f)
            return NULL;
        st->frames = f;
        st->cap = cap;
    }
    memset(&st->frames[st->n], 0, sizeof st->frames[0]);
    return &st->frames[st->n++];
}

static void set_module(struct tattle_frame *f, Dwfl_Module *mod)
{
    Dwarf_Addr start = 0;
    const char *name = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
    f->image_addr = start;
    f->module = name;
    f->in_app = module_in_app(mod);
}

/* The file name at index idx of the CU's line table. */
static char *cu_file(Dwarf_Die *cudie, Dwarf_Word idx)
{
    Dwarf_Files *files;
    size_t nfiles;
    const char *name;
    if (dwarf_getsrcfiles(cudie, &files, &nfiles) != 0 || idx >= nfiles)
        return NULL;
    name = dwarf_filesrc(files, idx, NULL, NULL);
    return name ? strdup(name) : NULL;
}

/* One frame per inlined layer at pc (innermost first), from the DWARF
 * scopes of dmod (mod's twin, or mod), where pc's lookup address is
 * lookup. Returns the number of frames added; 0 if there is no DWARF. */
/* Without .debug_aranges (rustc, some linkers) libdw finds no unit for an
 * address: look through the units' own address ranges instead. */
static Dwarf_Die *unit_by_scan(Dwfl_Module *mod, uint64_t lookup, Dwarf_Addr *bias, Dwarf_Die *found)
{
    Dwarf *dw = dwfl_module_getdwarf(mod, bias);
    Dwarf_Off off = 0, next;
    size_t hsize;
    while (dw && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
        if (dwarf_offdie(dw, off + hsize, found) && dwarf_haspc(found, lookup - *bias) > 0)
            return found;
        off = next;
    }
    return NULL;
}

/* The file, line and column of lookup in its unit. */
static char *source_line(Dwfl_Module *mod, Dwarf_Die *cudie, int scanned, uint64_t lookup, Dwarf_Addr bias,
                         int *lineno, int *col)
{
    const char *src = NULL;
    if (!scanned) {
        Dwfl_Line *line = dwfl_module_getsrc(mod, lookup);
        if (line)
            src = dwfl_lineinfo(line, NULL, lineno, col, NULL, NULL);
    } else {
        Dwarf_Line *line = dwarf_getsrc_die(cudie, lookup - bias);
        if (line && (src = dwarf_linesrc(line, NULL, NULL)) != NULL) {
            dwarf_lineno(line, lineno);
            dwarf_linecol(line, col);
        }
    }
    return src ? strdup(src) : NULL;
}

#define SCOPE_DEPTH 64

/* Where dwarf_getscopes finds nothing (functions inside Fortran modules,
 * Rust's namespaces): walk the unit's tree down to the innermost function
 * or inlined call whose ranges hold addr. path[0..*depth) holds the way
 * down; returns 1 when a function was found. */
static int walk_to(Dwarf_Die *parent, Dwarf_Addr addr, Dwarf_Die *path, int *depth)
{
    Dwarf_Die child;
    if (*depth >= SCOPE_DEPTH || dwarf_child(parent, &child) != 0)
        return 0;
    do {
        int tag = dwarf_tag(&child);
        int container = tag == DW_TAG_namespace || tag == DW_TAG_module || tag == DW_TAG_class_type ||
                        tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
        int code = tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block;
        if (container || (code && dwarf_haspc(&child, addr) > 0)) {
            int mark = *depth;
            path[(*depth)++] = child;
            if (walk_to(&child, addr, path, depth) || (tag != DW_TAG_lexical_block && code))
                return 1;
            *depth = mark;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return 0;
}

/* The scopes at addr, innermost first, as dwarf_getscopes gives them. */
static int scopes_by_walk(Dwarf_Die *cudie, Dwarf_Addr addr, Dwarf_Die **scopes)
{
    Dwarf_Die path[SCOPE_DEPTH];
    int depth = 0, i;
    if (!walk_to(cudie, addr, path, &depth) || !(*scopes = malloc((size_t)depth * sizeof **scopes)))
        return 0;
    for (i = 0; i < depth; i++)
        (*scopes)[i] = path[depth - 1 - i];
    return depth;
}

static int add_dwarf_frames(Dwfl_Module *mod, Dwfl_Module *dmod, int64_t delta, uint64_t pc, uint64_t lookup,
                            struct tattle_stack *out)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die unit, *cudie = dwfl_module_addrdie(dmod, lookup, &bias);
    Dwarf_Die *scopes = NULL;
    char *file = NULL;
    int lineno = 0, col = 0, nscopes, i, added = 0, scanned = 0;
    if (!cudie && (cudie = unit_by_scan(dmod, lookup, &bias, &unit)) != NULL)
        scanned = 1;
    if (!cudie)
        return 0;
    file = source_line(dmod, cudie, scanned, lookup, bias, &lineno, &col);
    /* dwarf_getscopes finds the innermost scope, but past an inlined
     * instance it continues in the abstract definition's parents; the
     * physical nesting (inline within inline within the function) comes
     * from the DIE tree, as dwarf_getscopes_die walks it. */
    nscopes = dwarf_getscopes(cudie, lookup - bias, &scopes);
    if (nscopes > 0) {
        Dwarf_Die innermost = scopes[0];
        free(scopes);
        scopes = NULL;
        nscopes = dwarf_getscopes_die(&innermost, &scopes);
    } else {
        free(scopes);
        scopes = NULL;
        nscopes = scopes_by_walk(cudie, lookup - bias, &scopes);
    }
    for (i = 0; i < nscopes; i++) {
        int tag = dwarf_tag(&scopes[i]);
        struct tattle_frame *f;
        Dwarf_Attribute attr;
        Dwarf_Word v;
        if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
            continue;
        f = push(out);
        if (!f)
            break;
        f->pc = pc;
        set_module(f, mod);
        f->function = tattle__die_function_name(&scopes[i], cudie);
        f->file = file;
        f->line = lineno;
        f->column = col;
        file = NULL;
        added++;
        if (tag == DW_TAG_subprogram) {
            Dwarf_Addr low;
            if (dwarf_lowpc(&scopes[i], &low) == 0)
                f->symbol_addr = low + bias + (uint64_t)delta;
            break;
        }
        /* This layer was inlined: the caller's location is the call site. */
        f->inlined = 1;
        if (dwarf_attr(&scopes[i], DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0)
            file = cu_file(cudie, v);
        lineno = dwarf_attr(&scopes[i], DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0 ? (int)v : 0;
        col = dwarf_attr(&scopes[i], DW_AT_call_column, &attr) && dwarf_formudata(&attr, &v) == 0 ? (int)v : 0;
    }
    free(file);
    free(scopes);
    return added;
}

void tattle__symbolize(struct tattle_symbolizer *s, uint64_t pc, int activation, struct tattle_stack *out)
{
    /* A return address points after the call; look up the call itself. */
    uint64_t lookup = activation ? pc : pc - 1;
    Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, lookup), *dmod = NULL;
    int64_t delta = 0;
    struct tattle_frame *f;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *symname;
    if (mod && module_is_agent(mod))
        return;
    if (mod && !(dmod = twin_of(mod, &delta))) {
        dmod = mod;
        delta = 0;
    }
    if (mod && add_dwarf_frames(mod, dmod, delta, pc, lookup - (uint64_t)delta, out) > 0) {
        /* The outermost layer is the real function: prefer the ELF symbol's
         * address, and its name when DWARF had none. */
        f = &out->frames[out->n - 1];
        symname = dwfl_module_addrinfo(dmod, lookup - (uint64_t)delta, &off, &sym, NULL, NULL, NULL);
        if (symname && !f->symbol_addr)
            f->symbol_addr = lookup - off;
        if (symname && !f->function)
            f->function = tattle__demangle(symname);
        return;
    }
    f = push(out);
    if (!f)
        return;
    f->pc = pc;
    if (!mod)
        return;
    set_module(f, mod);
    symname = dwfl_module_addrinfo(dmod, lookup - (uint64_t)delta, &off, &sym, NULL, NULL, NULL);
    if (symname) {
        f->function = tattle__demangle(symname);
        f->symbol_addr = lookup - off;
    }
}

static int fill_image(Dwfl_Module *mod, struct tattle_image *img)
{
    const unsigned char *bits = NULL;
    GElf_Addr id_vaddr;
    Dwarf_Addr start = 0, end = 0, bias = 0;
    int len;
    memset(img, 0, sizeof *img);
    img->path = dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
    img->start = start;
    img->end = end;
    if (dwfl_module_getelf(mod, &bias))
        img->vmaddr = start - bias;
    len = dwfl_module_build_id(mod, &bits, &id_vaddr);
    if (len > 0 && bits) {
        if (len > (int)sizeof img->build_id)
            len = sizeof img->build_id;
        memcpy(img->build_id, bits, (size_t)len);
        img->build_id_len = len;
    }
    return 0;
}

int tattle__symbolizer_image(struct tattle_symbolizer *s, uint64_t pc, struct tattle_image *img)
{
    Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
    return mod ? fill_image(mod, img) : -1;
}

struct find_path { const char *path; Dwfl_Module *found; };

static int match_path(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start, void *arg)
{
    struct find_path *fp = arg;
    (void)ud;
    (void)start;
    if (name && !strcmp(name, fp->path)) {
        fp->found = mod;
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

int tattle__symbolizer_image_by_path(struct tattle_symbolizer *s, const char *path, struct tattle_image *img)
{
    struct find_path fp = {path, NULL};
    dwfl_getmodules(s->dwfl, match_path, &fp, 0);
    return fp.found ? fill_image(fp.found, img) : -1;
}

void tattle__symbolizer_forget_files(void)
{
    for (int i = 0; i < TWINS; i++)
        twin_drop(&twins[i]);
    free(twin_debuginfo_path);
    twin_debuginfo_path = NULL;
}

void tattle__stack_free(struct tattle_stack *st)
{
    size_t i;
    for (i = 0; i < st->n; i++) {
        free(st->frames[i].function);
        free(st->frames[i].file);
    }
    free(st->frames);
    memset(st, 0, sizeof *st);
}

void tattle__debug_id(const unsigned char *build_id, int len, char out[37])
{
    unsigned char b[16] = {0};
    unsigned char g[16];
    int i;
    memcpy(b, build_id, len < 16 ? (size_t)len : 16);
    /* data1 (4 bytes), data2, data3 (2 bytes each) are byte-swapped. */
    g[0] = b[3], g[1] = b[2], g[2] = b[1], g[3] = b[0];
    g[4] = b[5], g[5] = b[4];
    g[6] = b[7], g[7] = b[6];
    for (i = 8; i < 16; i++)
        g[i] = b[i];
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[0], g[1],
             g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}
