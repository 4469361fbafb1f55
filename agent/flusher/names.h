/* names.h - function names as gdb prints them.
 *
 * Owns: demangling symbol names (C++ and Rust's legacy mangling through the
 * C++ ABI's demangler, Rust's hash suffix dropped; gfortran's
 * __module_MOD_procedure as module::procedure), and naming a DWARF
 * subprogram or inlined call: the linkage name demangled for C++, and where
 * there is none, or for Rust and Fortran, the DIE's name qualified by its
 * enclosing namespaces, classes and modules.
 * Signal context: NO (flusher only). Returns malloc'd strings.
 */
#ifndef TATTLE_NAMES_H
#define TATTLE_NAMES_H

#include <elfutils/libdw.h>

/* A symbol table name, demangled. NULL for NULL. */
char *tattle__demangle(const char *name);

/* The name of a subprogram or inlined subroutine DIE of CU cudie. */
char *tattle__die_function_name(Dwarf_Die *die, Dwarf_Die *cudie);

#endif
