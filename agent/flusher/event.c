/* event.c - building PostHog events (see event.h).
 *
 * Signal context: NO.
 */
#include "event.h"
#include "threads.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "merge.h"
#include "signames.h"
#include "uuid.h"

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* n digits of v, zero-padded. */
static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

void tattle__event_time(uint64_t time_ns, char out[32])
{
    time_t secs = (time_t)(time_ns / 1000000000ULL);
    struct tm tm;
    char *p = out;
    gmtime_r(&secs, &tm);
    p = put_digits(p, (unsigned)(tm.tm_year + 1900) % 10000, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(time_ns / 1000000ULL % 1000ULL), 3);
    *p++ = 'Z';
    *p = 0;
}

static void add_hex(cJSON *obj, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
    cJSON_AddStringToObject(obj, key, buf);
}

cJSON *tattle__event_new(const char *name, uint64_t time_ns, const char *distinct_id)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON *props;
    char uuid[TATTLE_UUID_STR], ts[32];
    tattle__uuid_v7(uuid, time_ns / 1000000ULL);
    tattle__event_time(time_ns, ts);
    cJSON_AddStringToObject(ev, "event", name);
    cJSON_AddStringToObject(ev, "uuid", uuid);
    props = cJSON_AddObjectToObject(ev, "properties");
    if (distinct_id && *distinct_id) {
        cJSON_AddStringToObject(ev, "distinct_id", distinct_id);
    } else {
        char anon[TATTLE_UUID_STR];
        tattle__uuid_v7(anon, time_ns / 1000000ULL);
        cJSON_AddStringToObject(ev, "distinct_id", anon);
        cJSON_AddBoolToObject(props, "$process_person_profile", 0);
    }
    cJSON_AddStringToObject(ev, "timestamp", ts);
    tattle__event_add_lib(props);
    return ev;
}

void tattle__event_add_lib(cJSON *props)
{
    cJSON_AddStringToObject(props, "$lib", "tattle");
    cJSON_AddStringToObject(props, "$lib_version", TATTLE_VERSION);
    cJSON_AddBoolToObject(props, "$is_server", 1);
    cJSON_AddBoolToObject(props, "$geoip_disable", 1);
}

/* The machine's description, the same for every event of this flusher. */
static const struct utsname *machine(char host[256])
{
    static struct utsname u;
    static char hostname[256];
    static int done;
    if (!done) {
        if (uname(&u) != 0)
            memset(&u, 0, sizeof u);
        gethostname(hostname, sizeof hostname - 1);
        done = 1;
    }
    memcpy(host, hostname, sizeof hostname);
    return &u;
}

/* Properties the capture call gave explicitly win over these. */
static void add_absent(cJSON *props, const char *key, cJSON *value)
{
    if (cJSON_HasObjectItem(props, key))
        cJSON_Delete(value);
    else
        cJSON_AddItemToObject(props, key, value);
}

void tattle__event_add_process(cJSON *event, const struct tattle_shm *shm)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(event, "properties");
    cJSON *args = cJSON_CreateArray();
    char host[256];
    const struct utsname *u = machine(host);
    size_t off = 0;
    while (off < shm->cmdline_len) {
        const char *a = shm->cmdline + off;
        size_t n = strnlen(a, shm->cmdline_len - off);
        cJSON_AddItemToArray(args, cJSON_CreateString(a));
        off += n + 1;
    }
    add_absent(props, "executable", cJSON_CreateString(shm->exe));
    add_absent(props, "arguments", args);
    add_absent(props, "pid", cJSON_CreateNumber(shm->host_pid));
    add_absent(props, "ppid", cJSON_CreateNumber(shm->host_ppid));
    add_absent(props, "hostname", cJSON_CreateString(host));
    add_absent(props, "$os", cJSON_CreateString("Linux"));
    if (u->release[0]) {
        add_absent(props, "$os_version", cJSON_CreateString(u->release));
        add_absent(props, "arch", cJSON_CreateString(u->machine));
    }
}

static char *demangle_type(const char *mangled)
{
    int status = -1;
    char *d = __cxa_demangle(mangled, NULL, NULL, &status);
    if (d && status == 0)
        return d;
    free(d);
    return strdup(mangled);
}

void tattle__event_crash_title(const struct tattle_crash *c, char *type, size_t tcap, char *value, size_t vcap)
{
    const char *code = tattle__si_code_name(c->signo, c->si_code);
    if (c->abort_kind == TATTLE_ABORT_ASSERT) {
        snprintf(type, tcap, "assertion");
        if (c->assert_expr[0])
            snprintf(value, vcap, "%s:%u: %s: Assertion `%s' failed.", c->assert_file, c->assert_line,
                     c->assert_func, c->assert_expr);
        else
            snprintf(value, vcap, "%s:%u: %s: %s", c->assert_file, c->assert_line, c->assert_func,
                     c->abort_msg);
        return;
    }
    if (c->abort_kind == TATTLE_ABORT_CXX && c->cxx_type[0]) {
        char *t = demangle_type(c->cxx_type);
        snprintf(type, tcap, "%s", t);
        free(t);
        snprintf(value, vcap, "%s", c->cxx_what[0] ? c->cxx_what : "uncaught exception");
        return;
    }
    snprintf(type, tcap, "%s", tattle__signal_name(c->signo));
    if (c->signo == SIGABRT && c->abort_msg[0]) {
        size_t n;
        snprintf(value, vcap, "Aborted: %s", c->abort_msg);
        n = strlen(value);
        while (n > 0 && (value[n - 1] == '\n' || value[n - 1] == ' '))
            value[--n] = 0;
    } else if (tattle__si_code_has_address(c->signo, c->si_code)) {
        snprintf(value, vcap, "%s (%s) at address 0x%llx", tattle__signal_description(c->signo),
                 code ? code : "?", (unsigned long long)c->fault_addr);
    } else if (tattle__event_is_kill(c)) {
        snprintf(value, vcap, "killed: %s sent by process %d (uid %u); no fault, the stack shows where the program was",
                 tattle__signal_name(c->signo), c->sender_pid, c->sender_uid);
    } else if (c->sender_pid && c->sender_pid != c->pid) {
        snprintf(value, vcap, "%s (%s) sent by process %d", tattle__signal_description(c->signo),
                 code ? code : "?", c->sender_pid);
    } else {
        snprintf(value, vcap, "%s (%s)", tattle__signal_description(c->signo), code ? code : "?");
    }
}

static const char *frame_lang(const char *file)
{
    const char *dot = file ? strrchr(file, '.') : NULL;
    if (!dot)
        return NULL;
    if (!strcmp(dot, ".c") || !strcmp(dot, ".h"))
        return "c";
    if (!strcmp(dot, ".cpp") || !strcmp(dot, ".cc") || !strcmp(dot, ".cxx") || !strcmp(dot, ".hpp") ||
        !strcmp(dot, ".hh") || !strcmp(dot, ".hxx"))
        return "cpp";
    return NULL;
}

static cJSON *frame_json(const struct tattle_frame *f)
{
    cJSON *j = cJSON_CreateObject();
    const char *base = f->module ? strrchr(f->module, '/') : NULL;
    const char *lang = frame_lang(f->file);
    cJSON_AddStringToObject(j, "platform", "native");
    if (lang)
        cJSON_AddStringToObject(j, "lang", lang);
    cJSON_AddStringToObject(j, "function", f->signal_frame ? "<signal handler called>"
                                           : f->function ? f->function : "??");
    if (f->file)
        cJSON_AddStringToObject(j, "filename", f->file);
    if (f->line > 0)
        cJSON_AddNumberToObject(j, "lineno", f->line);
    if (f->column > 0)
        cJSON_AddNumberToObject(j, "colno", f->column);
    if (f->module)
        cJSON_AddStringToObject(j, "module", base ? base + 1 : f->module);
    cJSON_AddBoolToObject(j, "in_app", f->in_app);
    cJSON_AddBoolToObject(j, "client_resolved", f->function != NULL);
    if (f->inlined) {
        cJSON_AddBoolToObject(j, "inline", 1);
    } else {
        add_hex(j, "instruction_addr", f->pc);
        if (f->symbol_addr)
            add_hex(j, "symbol_addr", f->symbol_addr);
        if (f->image_addr)
            add_hex(j, "image_addr", f->image_addr);
    }
    return j;
}

/* Outermost first, crash site last; when truncated, the crash end is kept. */
cJSON *tattle__event_frames(const struct tattle_stack *st)
{
    cJSON *arr = cJSON_CreateArray();
    size_t n = st->n < TATTLE_EVENT_MAX_FRAMES ? st->n : TATTLE_EVENT_MAX_FRAMES;
    size_t i;
    for (i = n; i-- > 0;)
        cJSON_AddItemToArray(arr, frame_json(&st->frames[i]));
    return arr;
}

static int image_listed(cJSON *images, uint64_t start)
{
    cJSON *it;
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)start);
    cJSON_ArrayForEach(it, images)
    {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(it, "image_addr");
        if (cJSON_IsString(a) && !strcmp(a->valuestring, buf))
            return 1;
    }
    return 0;
}

static void add_image(cJSON *images, const struct tattle_image *img)
{
    cJSON *j;
    char debug_id[37], code_id[129];
    int i;
    if (!img->build_id_len || image_listed(images, img->start))
        return;
    tattle__debug_id(img->build_id, img->build_id_len, debug_id);
    for (i = 0; i < img->build_id_len; i++)
        snprintf(code_id + 2 * i, 3, "%02x", img->build_id[i]);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "elf");
    cJSON_AddStringToObject(j, "debug_id", debug_id);
    cJSON_AddStringToObject(j, "code_id", code_id);
    add_hex(j, "image_addr", img->start);
    cJSON_AddNumberToObject(j, "image_size", (double)(img->end - img->start));
    add_hex(j, "image_vmaddr", img->vmaddr);
    if (img->path)
        cJSON_AddStringToObject(j, "code_file", img->path);
    cJSON_AddStringToObject(j, "arch", "x86_64");
    cJSON_AddItemToArray(images, j);
}

/* The executable first, then every module a frame points into. */
cJSON *tattle__event_debug_images(struct tattle_symbolizer *sym, const char *exe, const struct tattle_stack *st)
{
    cJSON *images = cJSON_CreateArray();
    struct tattle_image img;
    size_t i;
    if (exe && exe[0] && tattle__symbolizer_image_by_path(sym, exe, &img) == 0)
        add_image(images, &img);
    for (i = 0; i < st->n && i < TATTLE_EVENT_MAX_FRAMES; i++)
        if (!st->frames[i].inlined && tattle__symbolizer_image(sym, st->frames[i].pc, &img) == 0)
            add_image(images, &img);
    return images;
}

static cJSON *registers_json(const struct tattle_crash *c)
{
    static const struct { const char *name; int idx; } regs[] = {
        {"rax", REG_RAX}, {"rbx", REG_RBX}, {"rcx", REG_RCX}, {"rdx", REG_RDX}, {"rsi", REG_RSI},
        {"rdi", REG_RDI}, {"rbp", REG_RBP}, {"rsp", REG_RSP}, {"r8", REG_R8},   {"r9", REG_R9},
        {"r10", REG_R10}, {"r11", REG_R11}, {"r12", REG_R12}, {"r13", REG_R13}, {"r14", REG_R14},
        {"r15", REG_R15}, {"rip", REG_RIP}, {"eflags", REG_EFL},
    };
    cJSON *j = cJSON_CreateObject();
    size_t i;
    for (i = 0; i < sizeof regs / sizeof regs[0]; i++)
        add_hex(j, regs[i].name, c->gregs[regs[i].idx]);
    return j;
}

/* A fatal signal another process sent (kill, timeout -s ABRT, a
 * watchdog): no fault happened; the stack shows where the program was. */
int tattle__event_is_kill(const struct tattle_crash *c)
{
    return c->si_code <= 0 && c->sender_pid > 0 && c->sender_pid != c->pid && c->abort_kind == TATTLE_ABORT_NONE;
}

static const char *mechanism_type(const struct tattle_crash *c)
{
    if (tattle__event_is_kill(c))
        return "kill";
    if (c->abort_kind == TATTLE_ABORT_ASSERT)
        return "assert";
    if (c->abort_kind == TATTLE_ABORT_CXX)
        return "cxx_terminate";
    return "signalhandler";
}

static cJSON *exception_json(const struct tattle_crash *c, const struct tattle_stack *st)
{
    cJSON *ex = cJSON_CreateObject();
    cJSON *mech, *trace;
    char type[256], value[2048];
    tattle__event_crash_title(c, type, sizeof type, value, sizeof value);
    cJSON_AddStringToObject(ex, "type", type);
    cJSON_AddStringToObject(ex, "value", value);
    mech = cJSON_AddObjectToObject(ex, "mechanism");
    cJSON_AddStringToObject(mech, "type", mechanism_type(c));
    cJSON_AddBoolToObject(mech, "handled", 0);
    cJSON_AddBoolToObject(mech, "synthetic", 0);
    cJSON_AddNumberToObject(ex, "thread_id", c->tid);
    trace = cJSON_AddObjectToObject(ex, "stacktrace");
    cJSON_AddStringToObject(trace, "type", "raw");
    cJSON_AddItemToObject(trace, "frames", tattle__event_frames(st));
    if (st->elided && st->elided_at < st->n && st->n <= TATTLE_EVENT_MAX_FRAMES) {
        /* Outermost first: the gap is before the innermost elided_at frames. */
        cJSON *gap = cJSON_AddArrayToObject(trace, "frames_omitted");
        cJSON_AddItemToArray(gap, cJSON_CreateNumber((double)(st->n - st->elided_at - 1)));
        cJSON_AddItemToArray(gap, cJSON_CreateNumber((double)(st->n - st->elided_at)));
        cJSON_AddNumberToObject(trace, "frames_elided", (double)st->elided);
    }
    return ex;
}

/* "threads": the crashing thread first (its stack is the exception's),
 * then the others in tid order, as gdb's `thread apply all bt` lists them. */
static cJSON *threads_json(const struct tattle_crash *c, const struct tattle_thread_stacks *o)
{
    cJSON *threads = cJSON_CreateObject(), *values = cJSON_AddArrayToObject(threads, "values"), *th;
    uint32_t i;
    th = cJSON_CreateObject();
    cJSON_AddNumberToObject(th, "id", c->tid);
    cJSON_AddStringToObject(th, "name", c->thread_name);
    cJSON_AddBoolToObject(th, "crashed", 1);
    cJSON_AddItemToArray(values, th);
    for (i = 0; i < o->t->n; i++) {
        const struct tattle_thread *t = &o->t->t[i];
        struct tattle_stack cut = o->st[i];
        th = cJSON_CreateObject();
        cJSON_AddNumberToObject(th, "id", t->tid);
        cJSON_AddStringToObject(th, "name", t->name);
        cJSON_AddBoolToObject(th, "crashed", 0);
        if (t->stopped) {
            cJSON *trace = cJSON_AddObjectToObject(th, "stacktrace");
            if (cut.n > TATTLE_EVENT_THREAD_FRAMES)
                cut.n = TATTLE_EVENT_THREAD_FRAMES;
            cJSON_AddStringToObject(trace, "type", "raw");
            cJSON_AddItemToObject(trace, "frames", tattle__event_frames(&cut));
            if (o->st[i].n > cut.n || o->st[i].truncated)
                cJSON_AddBoolToObject(th, "stack_truncated", 1);
        } else {
            cJSON_AddStringToObject(th, "stacktrace_missing", "the thread could not be stopped in time");
        }
        cJSON_AddItemToArray(values, th);
    }
    if (o->t->total > o->t->n)
        cJSON_AddNumberToObject(threads, "omitted", o->t->total - o->t->n);
    if (o->t->err)
        cJSON_AddStringToObject(threads, "error", strerror(o->t->err));
    return threads;
}

cJSON *tattle__event_crash(const struct tattle_config *cfg, const struct tattle_shm *shm,
                           const struct tattle_crash *c, const struct tattle_stack *st,
                           struct tattle_symbolizer *sym, const struct tattle_thread_stacks *others)
{
    cJSON *ev = tattle__event_new("$exception", c->time_ns, cfg->distinct_id);
    cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
    cJSON *list = cJSON_AddArrayToObject(props, "$exception_list");
    const char *code = tattle__si_code_name(c->signo, c->si_code);
    cJSON_AddItemToArray(list, exception_json(c, st));
    cJSON_AddStringToObject(props, "$exception_level", "fatal");
    cJSON_AddItemToObject(props, "$debug_images", tattle__event_debug_images(sym, shm->exe, st));
    cJSON_AddStringToObject(props, "signal", tattle__signal_name(c->signo));
    if (code)
        cJSON_AddStringToObject(props, "signal_code", code);
    if (tattle__si_code_has_address(c->signo, c->si_code))
        add_hex(props, "fault_address", c->fault_addr);
    if (c->sender_pid && c->sender_pid != c->pid) {
        cJSON_AddNumberToObject(props, "signal_sender_pid", c->sender_pid);
        cJSON_AddNumberToObject(props, "signal_sender_uid", c->sender_uid);
    }
    if (tattle__event_is_kill(c))
        cJSON_AddBoolToObject(props, "killed", 1);
    if (c->abort_msg[0])
        cJSON_AddStringToObject(props, "abort_message", c->abort_msg);
    cJSON_AddNumberToObject(props, "thread_id", c->tid);
    cJSON_AddStringToObject(props, "thread_name", c->thread_name);
    cJSON_AddItemToObject(props, "registers", registers_json(c));
    if (others && others->t)
        cJSON_AddItemToObject(props, "threads", threads_json(c, others));
    if (st->truncated || st->n > TATTLE_EVENT_MAX_FRAMES)
        cJSON_AddBoolToObject(props, "stack_truncated", 1);
    if (c->context_len) {
        struct tattle_merged m;
        tattle__merge_context(c->context, c->context_len, &m);
        if (m.distinct) {
            cJSON_ReplaceItemInObject(ev, "distinct_id", cJSON_CreateString(m.distinct));
            cJSON_DeleteItemFromObjectCaseSensitive(props, "$process_person_profile");
        }
        tattle__merged_apply(&m, ev);
        tattle__merged_free(&m);
    }
    tattle__event_add_process(ev, shm);
    /* The crashing process, not the one that created the region (a forked
     * child crashes with its own pid). */
    cJSON_ReplaceItemInObject(props, "pid", cJSON_CreateNumber(c->pid));
    cJSON_ReplaceItemInObject(props, "ppid", cJSON_CreateNumber(c->ppid));
    return ev;
}
