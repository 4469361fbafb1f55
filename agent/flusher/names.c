/* names.c - function names as gdb prints them (see names.h).
 *
 * Signal context: NO.
 */
#include "names.h"

#include <ctype.h>
#include <dwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* Rust's legacy symbols end in "::h" and 16 hex digits: not part of the name. */
static void drop_rust_hash(char *s)
{
    size_t n = strlen(s), i;
    if (n < 19 || strncmp(s + n - 19, "::h", 3) != 0)
        return;
    for (i = n - 16; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return;
    s[n - 19] = 0;
}

/* gfortran: __module_MOD_procedure. */
static char *fortran_module_procedure(const char *name)
{
    const char *mod = strstr(name, "_MOD_");
    char *out;
    if (strncmp(name, "__", 2) != 0 || !mod || mod == name + 2 || !mod[5])
        return NULL;
    if (asprintf(&out, "%.*s::%s", (int)(mod - name - 2), name + 2, mod + 5) < 0)
        return NULL;
    return out;
}

char *tattle__demangle(const char *name)
{
    int status = -1;
    char *d;
    if (!name)
        return NULL;
    if (name[0] == '_' && name[1] == 'Z') {
        d = __cxa_demangle(name, NULL, NULL, &status);
        if (d && status == 0) {
            drop_rust_hash(d);
            return d;
        }
        free(d);
    }
    if ((d = fortran_module_procedure(name)) != NULL)
        return d;
    return strdup(name);
}

/* The declaration a concrete or inlined instance stands for. */
static Dwarf_Die declaration(Dwarf_Die *die)
{
    Dwarf_Die d = *die, next;
    Dwarf_Attribute a;
    int hops;
    for (hops = 0; hops < 8; hops++) {
        if ((dwarf_attr(&d, DW_AT_abstract_origin, &a) || dwarf_attr(&d, DW_AT_specification, &a)) &&
            dwarf_formref_die(&a, &next))
            d = next;
        else
            break;
    }
    return d;
}

static int is_scope(int tag)
{
    return tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
           tag == DW_TAG_union_type || tag == DW_TAG_module || tag == DW_TAG_interface_type ||
           tag == DW_TAG_subprogram; /* a local class's function */
}

/* How a scope reads: its name; an unnamed namespace as gdb says it; an
 * unnamed class (a C++ lambda's closure, mostly) as <lambda>. */
static const char *scope_label(Dwarf_Die *die)
{
    const char *name = dwarf_diename(die);
    if (name)
        return name;
    return dwarf_tag(die) == DW_TAG_namespace ? "(anonymous namespace)" : "<lambda>";
}

/* name, qualified by the namespaces, classes and modules around decl. */
static char *scoped_name(Dwarf_Die *decl, const char *name)
{
    Dwarf_Die *scopes = NULL;
    int n = dwarf_getscopes_die(decl, &scopes), i;
    size_t len = strlen(name) + 1, at = 0;
    char *out;
    for (i = n - 1; i > 0; i--)
        if (is_scope(dwarf_tag(&scopes[i])))
            len += strlen(scope_label(&scopes[i])) + 2;
    if (!(out = malloc(len))) {
        free(scopes);
        return NULL;
    }
    for (i = n - 1; i > 0; i--) {
        const char *s;
        if (!is_scope(dwarf_tag(&scopes[i])))
            continue;
        s = scope_label(&scopes[i]);
        at += (size_t)snprintf(out + at, len - at, "%s::", s);
    }
    snprintf(out + at, len - at, "%s", name);
    free(scopes);
    return out;
}

static int lang_uses_scopes(Dwarf_Die *cudie)
{
    int lang = dwarf_srclang(cudie);
    return lang == DW_LANG_Rust || lang == DW_LANG_Fortran77 || lang == DW_LANG_Fortran90 ||
           lang == DW_LANG_Fortran95 || lang == DW_LANG_Fortran03 || lang == DW_LANG_Fortran08;
}

char *tattle__die_function_name(Dwarf_Die *die, Dwarf_Die *cudie)
{
    Dwarf_Attribute attr;
    Dwarf_Die decl = declaration(die);
    const char *linkage = NULL, *name = dwarf_diename(&decl);
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
        linkage = dwarf_formstring(&attr);
    if (!name && dwarf_attr_integrate(die, DW_AT_name, &attr))
        name = dwarf_formstring(&attr);
    /* Rust and Fortran: the source's path (gdb's crate::module::fn,
     * module::procedure). C++: the linkage name (with the parameter list
     * and templates gdb shows), else the path. C: the name. */
    if (name && (lang_uses_scopes(cudie) || !linkage))
        return scoped_name(&decl, name);
    return tattle__demangle(linkage ? linkage : name);
}
