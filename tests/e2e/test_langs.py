"""test_langs.py - crash reports of programs in other languages, gdb as the
oracle: Rust (rustc -g), Fortran (gfortran -g), and C++ names inside
inlined member templates and lambdas (g++ -O2 -g). Each program is compiled
here from tests/langs into a scratch directory, run plain and under the
agent (same death), and its frames compared with gdb's: the same names, in
the same order, with the same file and line for the program's own source.
A language whose compiler is not installed is skipped with the reason.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

LANGS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "langs"))


def compile_or_skip(box, compiler, argv):
    if not shutil.which(compiler):
        raise h.Skip("%s is not installed" % compiler)
    r = subprocess.run(argv, capture_output=True, text=True, cwd=box.dir, timeout=300)
    h.check(r.returncode == 0, "%s compiled the program" % compiler, r.stdout[-2000:], r.stderr[-2000:])


def crash_under_agent(box, exe):
    plain = h.run([exe], env=box.base_env(), cwd=box.dir)
    agent = h.run([exe], env=box.agent_env(), cwd=box.dir)
    h.check_equal(agent.status, plain.status, "the same death as without the agent",
                  agent.describe(), plain.describe())
    events = h.exceptions(box.events())
    h.check_equal(len(events), 1, "one $exception event", agent.stderr[-2000:])
    frames = list(reversed(events[0]["properties"]["$exception_list"][0]["stacktrace"]["frames"]))
    return agent, frames


def strip_templates(name):
    """geo::Grid<long>::each<...> -> geo::Grid::each (gdb and DWARF spell
    template arguments differently: long / long int)."""
    out, depth = "", 0
    for ch in name or "":
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out += ch
    return h.normalize_function(out)


def compare_own_frames(frames, gdb, source, names):
    """For each function of the program's own source named in names: our
    frame has gdb's name, file and line."""
    ours = {h.normalize_function(f.get("function")): f for f in frames}
    theirs = {n: (path, line) for n, path, line in gdb}
    for name in names:
        h.check(name in theirs, "gdb shows %s (the oracle)" % name, sorted(theirs))
        h.check(name in ours, "tattle names %s as gdb does" % name, [f.get("function") for f in frames])
        f = ours[name]
        h.check_equal(os.path.basename(f.get("filename") or ""), os.path.basename(theirs[name][0] or ""),
                      "%s: gdb's file" % name)
        h.check_equal(f.get("lineno"), theirs[name][1], "%s: gdb's line" % name)
    order = [h.normalize_function(f.get("function")) for f in frames]
    h.check(h.is_subsequence([n for n in order if n in names], [n for n, _, _ in gdb]),
            "in gdb's order", order, [n for n, _, _ in gdb])


@h.with_sandbox
def rust(box):
    exe = os.path.join(box.dir, "crashrs")
    compile_or_skip(box, "rustc", ["rustc", "-g", "-C", "opt-level=0", "-o", exe, os.path.join(LANGS, "crash.rs")])
    agent, frames = crash_under_agent(box, exe)
    gdb = h.gdb_backtrace([exe])
    compare_own_frames(frames, gdb, "crash.rs", ["crash::level3", "crash::level2", "crash::main"])
    h.check(not any(re.search(r"::h[0-9a-f]{16}$", f.get("function") or "") for f in frames),
            "no Rust hash suffix is left", [f.get("function") for f in frames])
    h.check(re.search(r"#\d+ +0x[0-9a-f]+ in crash::level3 \(.*crash\.rs:\d+\)", agent.stderr),
            "the report names crash::level3 with its line", agent.stderr[-2000:])


@h.with_sandbox
def fortran(box):
    exe = os.path.join(box.dir, "store")
    compile_or_skip(box, "gfortran", ["gfortran", "-g", "-O0", "-o", exe, os.path.join(LANGS, "store.f90")])
    agent, frames = crash_under_agent(box, exe)
    gdb = h.gdb_backtrace([exe])
    compare_own_frames(frames, gdb, "store.f90", ["store::put", "MAIN__"])
    h.check(re.search(r"#0 +0x[0-9a-f]+ in store::put \(.*store\.f90:\d+\)", agent.stderr),
            "the report's first frame is store::put with its line", agent.stderr[-2000:])


@h.with_sandbox
def cxx_scoped_inlined(box):
    exe = os.path.join(box.dir, "scoped")
    compile_or_skip(box, "g++", ["g++", "-g", "-O2", "-o", exe, os.path.join(LANGS, "scoped.cpp")])
    agent, frames = crash_under_agent(box, exe)
    gdb = h.gdb_backtrace([exe])
    ours = [strip_templates(f.get("function")) for f in frames]
    theirs = [strip_templates(n) for n, _, _ in gdb]
    h.check("geo::Grid::each" in theirs, "gdb names the inlined member template with its scope (the oracle)", theirs)
    h.check("geo::Grid::each" in ours, "so does tattle", ours)
    each = [f for f in frames if strip_templates(f.get("function")) == "geo::Grid::each"][0]
    h.check(each.get("function").startswith("geo::Grid<long"), "with the class's template arguments",
            each.get("function"))
    h.check_equal((each.get("lineno"), os.path.basename(each.get("filename") or "")),
                  ([line for n, _, line in gdb if strip_templates(n) == "geo::Grid::each"][0], "scoped.cpp"),
                  "at gdb's line")
    h.check(h.is_subsequence(theirs, ours), "gdb's frames appear in tattle's, in order", theirs, ours)


def without_cfi(box, frame_pointer):
    exe = os.path.join(box.dir, "nocfi")
    if not shutil.which("objcopy"):
        raise h.Skip("objcopy (binutils) is not installed")
    compile_or_skip(box, "gcc", ["gcc", "-g", "-O1", frame_pointer, "-fno-asynchronous-unwind-tables",
                                 "-fno-unwind-tables", "-o", exe, os.path.join(LANGS, "nocfi.c")])
    r = subprocess.run(["objcopy", "--remove-section", ".debug_frame", exe], capture_output=True, text=True)
    h.check(r.returncode == 0, "objcopy removed .debug_frame", r.stderr)
    agent, frames = crash_under_agent(box, exe)
    gdb = h.gdb_backtrace([exe])
    names = ["write_null", "level3", "level2", "level1", "main"]
    h.check_equal([n for n, _, _ in gdb][:5], names, "gdb finds every caller (the oracle)")
    compare_own_frames(frames, gdb, "nocfi.c", names)
    ours = [h.normalize_function(f.get("function")) for f in frames]
    h.check_equal(ours[:5], names, "tattle finds every caller, none skipped, none invented")
    h.check("__libc_start_call_main" in ours, "and goes on through libc's CFI", ours)


@h.with_sandbox
def c_without_unwind_tables_with_frame_pointers(box):
    without_cfi(box, "-fno-omit-frame-pointer")


@h.with_sandbox
def c_without_unwind_tables_or_frame_pointers(box):
    without_cfi(box, "-fomit-frame-pointer")


TESTS = {f.__name__: f for f in [rust, fortran, cxx_scoped_inlined, c_without_unwind_tables_with_frame_pointers,
                                  c_without_unwind_tables_or_frame_pointers]}

if __name__ == "__main__":
    h.main(TESTS)
