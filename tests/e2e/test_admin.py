"""test_admin.py - the admin side: `tattle enable/disable/status/flush` and the Debian package.

Every case that edits /etc/ld.so.preload runs in a private mount namespace
(unshare -m --propagation private) where a copy of /etc is bound over /etc,
so the real /etc is never written; the cases check the copy from outside.
The agent they enable is a copy of the build's (with its flusher beside it)
in a root-owned 0755 directory of the scratch tree, as an admin would keep it.

The package cases build the .deb with cpack from the build tree into a
scratch directory (cpack leaves only install_manifest_deb.txt in the build
tree), read it with
dpkg-deb, and install it for real inside a namespace where /usr and /var
are overlays whose upper layers are scratch directories (copy-on-write: the
real /usr, /var and dpkg database are never written) and /etc is a copy.
There a daemon running as nobody crashes under the installed agent,
enabled through /etc/ld.so.preload by the installed `tattle enable`, and
its crash must reach the configured sink: a PostHog stand-in on 127.0.0.1
named in /etc/tattle/tattle.conf.

Needs root, unshare -m with bind mounts (overlayfs for the install cases),
setpriv, and for the package cases cpack, dpkg-deb and dpkg; a case that
cannot run here is skipped with the reason.
"""
import glob
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from posthog_standin import StandIn  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TATTLE = os.path.join(SRC, "scripts", "tattle")
FLUSHER = os.path.join(os.path.dirname(h.AGENT), "tattle-flusher")
TESTS_DIR = os.path.join(h.BUILD, "tests")
EMITTER = os.path.join(TESTS_DIR, "emitter")
PROCS = os.path.join(TESTS_DIR, "procs")
CRASHER = os.path.join(TESTS_DIR, "crasher")
OUTER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534
KEY = "phc_tattle_admin_test_key_5d1e"
FILE_KEY = "phc_tattle_admin_file_key_93aa"
SANITIZER_ENV = {k: v for k, v in os.environ.items() if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS")}


# ---------------------------------------------------------------- helpers

def need_root():
    if os.geteuid() != 0:
        raise h.Skip("needs root (edits /etc/ld.so.preload in a mount namespace, runs programs as nobody)")


def need_namespace():
    need_root()
    scratch = tempfile.mkdtemp(prefix="tattle-adm-probe-")
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount --bind %s %s" % (shlex.quote(scratch), shlex.quote(scratch))],
                           capture_output=True, text=True)
    finally:
        os.rmdir(scratch)
    if r.returncode != 0:
        raise h.Skip("unshare -m with a bind mount is refused here: %s" % r.stderr.strip())
    if not shutil.which("setpriv"):
        raise h.Skip("setpriv (util-linux) is not installed")


def need_tools(*tools):
    for t in tools:
        if not shutil.which(t, path=OUTER_PATH):
            raise h.Skip("%s is not installed" % t)


def file_state(path):
    """Bytes, mode, owner and inode of path, or None when absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": data, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "ino": st.st_ino, "mtime": st.st_mtime_ns}


def system_libs():
    """Two real libraries that are harmless to preload everywhere (the
    admin's other lines)."""
    found = []
    for name in ("libm.so.6", "libz.so.1"):
        cands = sorted(glob.glob("/usr/lib/*-linux-gnu/" + name) + glob.glob("/lib/*-linux-gnu/" + name))
        if not cands:
            raise h.Skip("no %s to stand for the admin's own preloads" % name)
        found.append(os.path.realpath(cands[0]))
    return found


def copy_etc(dest):
    """A copy of /etc for a namespace, without ld.so.preload and tattle/."""
    subprocess.run(["cp", "-a", "/etc", dest], check=True)
    for stale in ("ld.so.preload", "tattle"):
        p = os.path.join(dest, stale)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)


class Machine:
    """A scratch tree: a copy of /etc (without ld.so.preload and tattle/), a
    root-owned 0755 lib/ with copies of the agent and its flusher, a state
    directory for root's processes. run() runs a command in a new private
    mount namespace with the copy bound over /etc."""

    def __init__(self, name, namespace=True):
        if namespace:
            need_namespace()
        for prog in (h.AGENT, FLUSHER):
            h.check(os.path.exists(prog), "the build has %s" % prog)
        self.root = tempfile.mkdtemp(prefix="tattle-adm-%s-" % name[:20])
        try:
            os.chmod(self.root, 0o755)
            self.etc = os.path.join(self.root, "etc")
            self.preload = os.path.join(self.etc, "ld.so.preload")
            if namespace:
                copy_etc(self.etc)
            self.lib = self.agent_dir("lib")
            self.agent = os.path.join(self.lib, "libtattle.so")
            self.flusher = os.path.join(self.lib, "tattle-flusher")
            self.state = os.path.join(self.root, "state")
            os.mkdir(self.state, 0o700)
        except BaseException:
            self.cleanup()
            raise

    def agent_dir(self, name, agent=None, flusher=True, mode=0o755):
        """A directory holding a copy of the agent (or of the file agent)
        and, unless told not to, of the flusher."""
        d = os.path.join(self.root, name)
        os.mkdir(d)
        shutil.copy(agent or h.AGENT, os.path.join(d, "libtattle.so"))
        os.chmod(os.path.join(d, "libtattle.so"), 0o644)
        if flusher:
            shutil.copy(FLUSHER, os.path.join(d, "tattle-flusher"))
            os.chmod(os.path.join(d, "tattle-flusher"), 0o755)
        os.chmod(d, mode)
        return d

    def env(self, **extra):
        """The environment of the admin's shell; extra NAME=None removes NAME."""
        env = {"PATH": OUTER_PATH, "HOME": "/root", "LANG": "C", "XDG_STATE_HOME": self.state,
               "TATTLE_LIB": self.agent}
        env.update(SANITIZER_ENV)
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def run(self, argv, env=None, user=None, **kw):
        script = "mount --bind %s /etc && exec \"$@\"" % shlex.quote(self.etc)
        wrap = []
        if user is not None:
            wrap = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups", "--"]
        return h.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + wrap + list(argv),
                     env=env or self.env(), cwd=self.root, **kw)

    def tattle(self, *args, **kw):
        return self.run([TATTLE] + list(args), **kw)

    def write_preload(self, data, mode=0o644, gid=0):
        with open(self.preload, "wb") as f:
            f.write(data)
        os.chown(self.preload, 0, gid)
        os.chmod(self.preload, mode)

    def write_conf(self, text):
        d = os.path.join(self.etc, "tattle")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        path = os.path.join(d, "tattle.conf")
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, 0, 0)
        os.chmod(path, 0o644)

    def leftovers(self):
        return [n for n in os.listdir(self.etc) if n.startswith(".ld.so.preload")]

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def with_machine(fn, namespace=True):
    def test():
        m = Machine(fn.__name__, namespace)
        try:
            fn(m)
        finally:
            m.cleanup()
    test.__name__ = fn.__name__
    return test


def without_namespace(fn):
    return with_machine(fn, namespace=False)


def check_ok(r, what):
    h.check_equal(r.exit_code, 0, what, "stdout: %s" % r.stdout[-2000:], "stderr: %s" % r.stderr[-2000:])


def check_refused(r, what, words):
    h.check(r.exit_code not in (0, None), what + ": refused", "stdout: %s" % r.stdout[-2000:],
            "stderr: %s" % r.stderr[-3000:])
    h.check(words in r.stderr, what + ": says why (%r)" % words, r.stderr[-3000:])


def check_untouched(m, before, what):
    after = file_state(m.preload)
    h.check_equal(after, before, "%s: /etc/ld.so.preload untouched (bytes, mode, owner, inode, mtime)" % what)
    h.check_equal(m.leftovers(), [], "%s: no temporary file left in /etc" % what)


def other_lines():
    libm, libz = system_libs()
    return ("# the admin's own preloads\n%s\n\n  %s:%s\n" % (libm, libz, libm)).encode()


# ------------------------------------------------- enable and disable

@with_machine
def enable_adds_one_line_and_keeps_the_others(m):
    original = other_lines()
    m.write_preload(original, mode=0o604, gid=4)
    before = file_state(m.preload)
    r = m.tattle("enable")
    check_ok(r, "tattle enable")
    after = file_state(m.preload)
    h.check_equal(after["bytes"], original + (m.agent + "\n").encode(), "the agent's line is added after the others")
    h.check_equal([line for line in after["bytes"].decode().splitlines() if "libtattle" in line], [m.agent],
                  "exactly one line names the agent")
    h.check_equal((after["mode"], after["uid"], after["gid"]), (0o604, 0, 4), "the file's mode and owner are kept")
    h.check(after["ino"] != before["ino"], "the file was replaced by rename (a new inode), not rewritten in place")
    h.check_equal(m.leftovers(), [], "no temporary file left in /etc")
    h.check("enabled" in r.stdout, "it says so", r.stdout)
    # Programs started from now on in that /etc load the agent.
    maps = m.run(["sh", "-c", "cat /proc/self/maps"], env=m.env(TATTLE_LIB=None))
    h.check(m.agent in maps.stdout, "a program started afterwards has the agent mapped", maps.stdout[-1500:])
    h.check_equal(maps.stderr, "", "and prints nothing more")


@with_machine
def enable_twice_keeps_one_line(m):
    m.write_preload(other_lines())
    check_ok(m.tattle("enable"), "the first tattle enable")
    once = file_state(m.preload)
    r = m.tattle("enable")
    check_ok(r, "the second tattle enable")
    h.check("already enabled" in r.stdout, "the second one says it is already enabled", r.stdout)
    h.check_equal(file_state(m.preload), once, "the second one leaves the file as it was (same inode)")


@with_machine
def disable_removes_only_its_line(m):
    original = other_lines()
    m.write_preload(original, mode=0o640, gid=4)
    check_ok(m.tattle("enable"), "tattle enable")
    r = m.tattle("disable")
    check_ok(r, "tattle disable")
    after = file_state(m.preload)
    h.check_equal(after["bytes"], original, "every other line is back, byte for byte")
    h.check_equal((after["mode"], after["uid"], after["gid"]), (0o640, 0, 4), "mode and owner kept")
    h.check_equal(m.leftovers(), [], "no temporary file left in /etc")
    again = m.tattle("disable")
    check_ok(again, "tattle disable when not enabled")
    h.check("not enabled" in again.stdout, "it says there was nothing to do", again.stdout)
    h.check_equal(file_state(m.preload), after, "and changes nothing")


@with_machine
def without_a_preload_file_enable_creates_it_and_disable_removes_it(m):
    check_ok(m.tattle("enable"), "tattle enable")
    st = file_state(m.preload)
    h.check(st is not None, "/etc/ld.so.preload was created")
    h.check_equal((st["bytes"], st["mode"], st["uid"], st["gid"]), ((m.agent + "\n").encode(), 0o644, 0, 0),
                  "one line, 0644 root:root")
    check_ok(m.tattle("disable"), "tattle disable")
    h.check_equal(file_state(m.preload), None, "the file is gone again, as before enable")
    h.check_equal(m.leftovers(), [], "no temporary file left in /etc")


@with_machine
def a_file_without_a_final_newline_keeps_its_bytes(m):
    libm, _ = system_libs()
    original = ("# no newline at the end\n" + libm).encode()
    m.write_preload(original)
    check_ok(m.tattle("enable"), "tattle enable")
    h.check_equal(file_state(m.preload)["bytes"], original + b"\n" + m.agent.encode(),
                  "the agent goes on a line of its own, and the file still ends without a newline")
    check_ok(m.tattle("disable"), "tattle disable")
    h.check_equal(file_state(m.preload)["bytes"], original, "disable gives back the exact bytes")


@with_machine
def a_broken_agent_is_refused_and_the_file_untouched(m):
    m.write_preload(other_lines())
    before = file_state(m.preload)
    garbage = os.path.join(m.root, "garbage.so")
    with open(garbage, "wb") as f:
        f.write(b"\x7fELF not really" + os.urandom(4000))
    bad = os.path.join(m.agent_dir("bad", agent=garbage), "libtattle.so")
    r = m.tattle("enable", env=m.env(TATTLE_LIB=bad))
    check_refused(r, "an agent the loader cannot load", "cannot be preloaded")
    check_untouched(m, before, "an agent the loader cannot load")
    # Not a shared object at all (an empty file).
    empty = os.path.join(m.root, "empty.so")
    open(empty, "w").close()
    bad2 = os.path.join(m.agent_dir("empty", agent=empty), "libtattle.so")
    r = m.tattle("enable", env=m.env(TATTLE_LIB=bad2))
    check_refused(r, "an empty file", "not enabling")
    check_untouched(m, before, "an empty file")
    # A missing file.
    r = m.tattle("enable", env=m.env(TATTLE_LIB=os.path.join(m.root, "nowhere", "libtattle.so")))
    check_refused(r, "a missing agent", "no such file")
    check_untouched(m, before, "a missing agent")


@with_machine
def an_agent_others_could_replace_or_without_its_flusher_is_refused(m):
    m.write_preload(other_lines())
    before = file_state(m.preload)
    open_dir = m.agent_dir("open", mode=0o777)
    r = m.tattle("enable", env=m.env(TATTLE_LIB=os.path.join(open_dir, "libtattle.so")))
    check_refused(r, "an agent in a directory anyone may write", "writable by group or others")
    check_untouched(m, before, "a directory anyone may write")
    lone = m.agent_dir("lone", flusher=False)
    r = m.tattle("enable", env=m.env(TATTLE_LIB=os.path.join(lone, "libtattle.so")))
    check_refused(r, "an agent without its flusher", "no tattle-flusher beside it")
    check_untouched(m, before, "an agent without its flusher")
    private = m.agent_dir("private", mode=0o700)
    r = m.tattle("enable", env=m.env(TATTLE_LIB=os.path.join(private, "libtattle.so")))
    check_refused(r, "an agent other users cannot read", "other users")
    check_untouched(m, before, "an agent other users cannot read")


@with_machine
def only_root_may_enable_or_disable(m):
    m.write_preload(other_lines())
    for verb in ("enable", "disable"):
        before = file_state(m.preload)
        r = m.tattle(verb, user=NOBODY)
        check_refused(r, "tattle %s as nobody" % verb, "must be run as root")
        check_untouched(m, before, "tattle %s as nobody" % verb)
        check_ok(m.tattle("enable"), "tattle enable as root")


@with_machine
def enable_replaces_another_agent_and_leaves_a_mixed_line_alone(m):
    libm, _ = system_libs()
    old = os.path.join(m.agent_dir("old"), "libtattle.so")
    original = ("%s\n%s\n" % (libm, old)).encode()
    m.write_preload(original)
    r = m.tattle("enable")
    check_ok(r, "tattle enable over an older agent")
    h.check_equal(file_state(m.preload)["bytes"], ("%s\n%s\n" % (libm, m.agent)).encode(),
                  "the older agent's line is replaced, the other line kept")
    h.check("replaced" in r.stdout, "it says what it replaced", r.stdout)
    mixed = ("%s:%s\n" % (libm, old)).encode()
    m.write_preload(mixed)
    before = file_state(m.preload)
    for verb in ("enable", "disable"):
        r = m.tattle(verb)
        check_refused(r, "tattle %s with the agent on a line of other libraries" % verb, "edit it by hand")
        check_untouched(m, before, "a mixed line")


# ---------------------------------------------------------------- status

def check_no_key(r, what, *keys):
    for key in keys:
        for stream, text in (("stdout", r.stdout), ("stderr", r.stderr)):
            h.check(key not in text, "%s never prints the API key (%s)" % (what, stream), text[-2500:])


def flusher_has(option):
    with open(FLUSHER, "rb") as f:
        return option.encode() in f.read()


@with_machine
def status_says_enabled_or_disabled_and_never_the_key(m):
    m.write_conf("# test\nPOSTHOG_API_KEY=%s\nPOSTHOG_HOST=http://admin:s3cretpw@127.0.0.1:9\n" % FILE_KEY)
    env = m.env(POSTHOG_API_KEY=KEY)
    r = m.tattle("status", env=env)
    check_ok(r, "tattle status")
    h.check(r.stdout.startswith("tattle: disabled"), "disabled before enable", r.stdout[:600])
    h.check("configuration file: honoured" in r.stdout, "the file is honoured", r.stdout)
    h.check("flushers running:" in r.stdout, "the flushers running are listed", r.stdout)
    check_no_key(r, "tattle status", KEY, FILE_KEY, "s3cretpw")
    check_ok(m.tattle("enable"), "tattle enable")
    for who, run in (("root", lambda: m.tattle("status", env=env)),
                     ("nobody", lambda: m.tattle("status", env=env, user=NOBODY)),
                     ("root for nobody", lambda: m.tattle("status", "--user", "nobody", env=env))):
        r = run()
        check_ok(r, "tattle status as %s" % who)
        h.check(r.stdout.startswith("tattle: enabled: /etc/ld.so.preload loads %s\n" % m.agent),
                "status as %s says enabled, with the agent's path" % who, r.stdout[:600])
        check_no_key(r, "tattle status as %s" % who, KEY, FILE_KEY, "s3cretpw")
        if flusher_has("--status"):
            key_lines = [line for line in r.stdout.splitlines() if "POSTHOG_API_KEY" in line]
            h.check(key_lines, "status as %s names the key's setting" % who, r.stdout)
            want = "(/etc/tattle/tattle.conf)" if who == "root for nobody" else "(environment)"
            h.check(want in key_lines[0], "and where it came from: %s" % want, key_lines)
        else:
            h.check("no --status" in r.stdout, "status says the flusher cannot tell more yet", r.stdout)
    check_ok(m.tattle("disable"), "tattle disable")
    r = m.tattle("status", env=env)
    h.check(r.stdout.startswith("tattle: disabled"), "disabled after disable", r.stdout[:600])


# ----------------------------------------------------------------- flush

def our_flushers(exe):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % name) in (exe, exe + " (deleted)"):
                    found.append(int(name))
            except OSError:
                pass
    return found


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@without_namespace
def flush_sends_what_waits_and_says_what_happened(m):
    if not flusher_has("--flush"):
        raise h.Skip("this build's tattle-flusher has no --flush yet")
    server = StandIn(start=False)
    try:
        spool = os.path.join(m.root, "spool")
        env = m.env(POSTHOG_API_KEY=KEY, POSTHOG_HOST=server.url, TATTLE_SPOOL_DIR=spool, TATTLE_LINGER_MS=2000)
        # Captured while the server is down: 20 events wait in the spool.
        host_env = dict(env, LD_PRELOAD=m.agent, TATTLE_LINGER_MS="0")
        r = h.run([EMITTER, "0", "20", "flush"], env=host_env, cwd=m.root)
        h.check_equal(r.exit_code, 0, "the emitter ran", r.stderr[-1500:])
        h.check(wait_until(lambda: not our_flushers(m.flusher), 15), "its flusher exited")
        batches = glob.glob(os.path.join(spool, "posthog-*", "*.batch"))
        h.check(batches, "batches wait in the spool")
        # Down: flush says so and exits 1; the batches stay.
        r = h.run([TATTLE, "flush"], env=env, cwd=m.root)
        h.check_equal(r.exit_code, 1, "tattle flush with the server down exits 1", r.stdout, r.stderr)
        h.check("wait" in r.stdout, "and says batches wait", r.stdout)
        check_no_key(r, "tattle flush", KEY)
        server.start()
        r = h.run([TATTLE, "flush"], env=env, cwd=m.root)
        check_ok(r, "tattle flush with the server up")
        h.check("sent 20 events" in r.stdout, "it says what it sent", r.stdout)
        check_no_key(r, "tattle flush", KEY)
        h.check_equal(len(server.accepted("burst")), 20, "the 20 events arrived")
        h.check_equal(server.violations(), [], "every request met PostHog's rules")
        h.check_equal(glob.glob(os.path.join(spool, "posthog-*", "*.batch")), [], "the spool is empty")
    finally:
        server.stop()
        for pid in our_flushers(m.flusher):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ------------------------------------------------------- the Debian package

class Package:
    """The .deb built with cpack from the build tree into a scratch
    directory."""

    def __init__(self):
        need_tools("cpack", "dpkg-deb")
        config = os.path.join(h.BUILD, "CPackConfig.cmake")
        if not os.path.exists(config):
            raise h.Skip("%s has no CPackConfig.cmake (a sanitizer build, or configured before "
                         "packaging/package.cmake existed: rerun scripts/build)" % h.BUILD)
        if not os.access(h.BUILD, os.W_OK):
            raise h.Skip("cpack writes install_manifest_deb.txt into %s, which this user cannot write" % h.BUILD)
        self.dir = tempfile.mkdtemp(prefix="tattle-adm-deb-")
        try:
            os.chmod(self.dir, 0o755)
            r = subprocess.run(["cpack", "-G", "DEB", "--config", config, "-B", self.dir],
                               capture_output=True, text=True, cwd=self.dir)
            debs = glob.glob(os.path.join(self.dir, "*.deb"))
            h.check(r.returncode == 0 and len(debs) == 1, "cpack made one .deb", r.stdout[-2000:], r.stderr[-2000:])
            self.deb = debs[0]
            os.chmod(self.deb, 0o644)
            # The multiarch directory: where this system's libc is.
            libc = glob.glob("/usr/lib/*-linux-gnu/libc.so.6") or glob.glob("/lib/*-linux-gnu/libc.so.6")
            h.check(libc, "this system has a multiarch libc")
            self.multiarch = os.path.basename(os.path.dirname(libc[0]))
        except BaseException:
            self.cleanup()
            raise
        self.libdir = "/usr/lib/%s/tattle" % self.multiarch
        self.agent = self.libdir + "/libtattle.so"

    def contents(self):
        out = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True, text=True, check=True).stdout
        entries = {}
        for line in out.splitlines():
            f = line.split()
            path = f[5][1:] if f[5].startswith("./") else f[5]
            entries[path.rstrip("/") or "/"] = (f[0], f[1])
        return entries

    def field(self, name):
        return subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True, text=True).stdout.strip()

    def control(self, member):
        d = tempfile.mkdtemp(prefix="tattle-adm-ctl-")
        try:
            subprocess.run(["dpkg-deb", "-e", self.deb, d], check=True)
            p = os.path.join(d, member)
            if not os.path.exists(p):
                return None
            with open(p) as f:
                return f.read()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def the_package_holds_the_agent_where_debian_puts_it():
    pkg = Package()
    try:
        c = pkg.contents()
        for path, mode in ((pkg.agent, "-rw-r--r--"), (pkg.libdir + "/tattle-flusher", "-rwxr-xr-x"),
                           ("/usr/bin/tattle", "-rwxr-xr-x"), ("/etc/tattle/tattle.conf", "-rw-r--r--")):
            h.check(path in c, "the package holds %s" % path, sorted(c))
            h.check_equal(c[path], (mode, "root/root"), "%s: mode and owner" % path)
        h.check_equal(c.get("/var/lib/tattle"), ("drwx-wx-wt", "root/root"), "/var/lib/tattle: root, 1733")
        h.check("/etc/ld.so.preload" not in c, "the package has no /etc/ld.so.preload")
        h.check(not [p for p in c if p.startswith("/usr/lib/tattle")], "nothing in /usr/lib/tattle (not multiarch)")
        h.check_equal(sorted(p for p in c if p.startswith("/etc/")), ["/etc/tattle", "/etc/tattle/tattle.conf"],
                      "nothing else under /etc")
        conffiles = pkg.control("conffiles")
        h.check_equal((conffiles or "").split(), ["/etc/tattle/tattle.conf"], "the configuration file is a conffile")
        depends = pkg.field("Depends")
        for dep in ("libc6", "libdw1", "libcjson1", "libcurl4", "zlib1g"):
            h.check(dep in [d.strip().split()[0] for d in depends.split(",")], "it depends on %s" % dep, depends)
        h.check_equal(pkg.field("Package"), "tattle", "the package's name")
        # The example configuration goes out unchanged; so does the script.
        d = tempfile.mkdtemp(prefix="tattle-adm-x-")
        try:
            subprocess.run(["dpkg-deb", "-x", pkg.deb, d], check=True)
            for inside, src in (("etc/tattle/tattle.conf", "etc/tattle.conf"), ("usr/bin/tattle", "scripts/tattle")):
                with open(os.path.join(d, inside), "rb") as a, open(os.path.join(SRC, src), "rb") as b:
                    h.check(a.read() == b.read(), "%s is %s" % (inside, src))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        # No maintainer script writes /etc/ld.so.preload (read by a static
        # look; the install case checks the file itself).
        for script in ("preinst", "postinst", "prerm", "postrm"):
            text = pkg.control(script) or ""
            writes = [line for line in text.splitlines()
                      if not line.lstrip().startswith(("#", "echo ", "printf "))
                      and (re.search(r">\s*\S*(ld\.so\.preload|\$\{?preload)", line)
                           or re.search(r"\b(sed\s+-i|mv|cp|rm|tee|truncate|ln|install)\b[^|;&]*"
                                        r"(ld\.so\.preload|\$\{?preload)", line)
                           or re.search(r"\btattle\s+(enable|disable)\b", line))]
            h.check_equal(writes, [], "%s never writes /etc/ld.so.preload" % script)
    finally:
        pkg.cleanup()


class Installed:
    """A mount namespace held by a sleeping process: /etc is a copy, /usr
    and /var are overlays over the real ones with scratch upper layers, and
    the package is installed there with dpkg. run() enters it (nsenter)."""

    def __init__(self, pkg):
        need_namespace()
        need_tools("dpkg", "dpkg-query", "nsenter")
        self.pkg = pkg
        self.root = tempfile.mkdtemp(prefix="tattle-adm-inst-")
        self.holder = None
        try:
            self._setup()
        except BaseException:
            self.cleanup()
            raise

    def _setup(self):
        os.chmod(self.root, 0o755)
        self.etc = os.path.join(self.root, "etc")
        copy_etc(self.etc)
        self.preload = os.path.join(self.etc, "ld.so.preload")
        mounts = ["mount --bind %s /etc" % shlex.quote(self.etc)]
        self.upper = {}
        for top in ("usr", "var"):
            upper = os.path.join(self.root, top + "-upper")
            work = os.path.join(self.root, top + "-work")
            os.mkdir(upper, 0o755)
            os.mkdir(work, 0o755)
            self.upper[top] = upper
            mounts.append("mount -t overlay overlay -o lowerdir=/%s,upperdir=%s,workdir=%s /%s"
                          % (top, shlex.quote(upper), shlex.quote(work), top))
        self.state = os.path.join(self.root, "rootstate")
        os.mkdir(self.state, 0o700)
        self.scratch = os.path.join(self.root, "scratch")   # where nobody may write (pid file, cwd)
        os.mkdir(self.scratch)
        os.chmod(self.scratch, 0o1777)
        script = " && ".join(mounts) + " && echo ready && exec sleep 100000"
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={"PATH": OUTER_PATH})
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            err = self.holder.stderr.read()
            self.holder.wait()
            self.holder = None
            raise h.Skip("a namespace with overlays over /usr and /var is refused here: %s" % err.strip())
        self.mnt_ns = os.readlink("/proc/%d/ns/mnt" % self.holder.pid)
        r = self.run(["dpkg", "--no-triggers", "-i", self.pkg.deb])
        if r.exit_code != 0 and "dependency problems" in r.stderr:
            raise h.Skip("the package's dependencies are not installed here: %s" % r.stderr[-800:])
        check_ok(r, "dpkg -i of the package in the namespace")
        self.install_output = r.stdout + r.stderr

    def env(self, **extra):
        env = {"PATH": OUTER_PATH, "HOME": "/root", "LANG": "C", "XDG_STATE_HOME": self.state}
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, argv, env=None, user=None, **kw):
        wrap = []
        if user is not None:
            wrap = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups", "--"]
        return h.run(["nsenter", "-t", str(self.holder.pid), "-m", "--"] + wrap + list(argv),
                     env=env or self.env(), cwd=self.root, **kw)

    def in_ns(self, path):
        """Where a path of the namespace's /usr or /var was written."""
        top, rest = path.lstrip("/").split("/", 1)
        return os.path.join(self.upper[top], rest)

    def status(self):
        r = self.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "tattle"])
        return r.stdout.strip() if r.exit_code == 0 else "not installed"

    def flushers(self):
        """Flushers running in this namespace."""
        def here(pid):
            try:
                return os.readlink("/proc/%d/ns/mnt" % pid) == self.mnt_ns
            except OSError:
                return False
        return h.flusher_pids(here, zombies=True)

    def cleanup(self):
        if self.holder:
            try:
                for _ in range(3):
                    for pid in self.flushers():
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.05)
            finally:
                self.holder.kill()
                self.holder.wait()
                self.holder.stdout.close()
                self.holder.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)


def with_installed(fn):
    def test():
        need_namespace()
        need_tools("dpkg", "dpkg-query", "nsenter")
        pkg = Package()
        try:
            inst = Installed(pkg)
            try:
                fn(inst)
            finally:
                inst.cleanup()
        finally:
            pkg.cleanup()
    test.__name__ = fn.__name__
    return test


@with_installed
def the_package_installs_and_removes_without_touching_ld_so_preload(inst):
    pkg = inst.pkg
    h.check("not enabled" in inst.install_output, "installing says the agent is not enabled", inst.install_output)
    h.check_equal(file_state(inst.preload), None, "installing created no /etc/ld.so.preload")
    for path in (pkg.agent, pkg.libdir + "/tattle-flusher", "/usr/bin/tattle"):
        h.check(os.path.exists(inst.in_ns(path)), "%s is installed" % path)
    st = os.lstat(inst.in_ns("/var/lib/tattle"))
    h.check_equal((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o1733, 0, 0), "/var/lib/tattle is root 1733")
    r = inst.run(["dpkg-query", "-W", "-f=${Conffiles}", "tattle"])
    h.check("/etc/tattle/tattle.conf" in r.stdout, "dpkg knows tattle.conf as a conffile", r.stdout)
    h.check_equal(inst.status(), "ii", "the package is installed")
    # The installed command finds the installed agent.
    r = inst.run(["tattle", "status"])
    check_ok(r, "tattle status")
    h.check("\nagent: %s\n" % pkg.agent in r.stdout, "tattle status names the installed agent", r.stdout)
    check_ok(inst.run(["tattle", "enable"]), "tattle enable")
    enabled = file_state(inst.preload)
    h.check_equal(enabled["bytes"], (pkg.agent + "\n").encode(), "enable names the installed agent")
    # Removing it while enabled is refused; the file stays as it is.
    r = inst.run(["dpkg", "-r", "tattle"])
    h.check(r.exit_code != 0, "dpkg -r is refused while /etc/ld.so.preload loads the agent", r.stdout, r.stderr)
    h.check("tattle disable" in r.stdout + r.stderr, "it says to run tattle disable", r.stderr[-1500:])
    h.check_equal(file_state(inst.preload), enabled, "/etc/ld.so.preload untouched by the refused removal")
    h.check(os.path.exists(inst.in_ns(pkg.agent)), "the agent is still installed")
    check_ok(inst.run(["tattle", "disable"]), "tattle disable")
    h.check_equal(file_state(inst.preload), None, "disable removed the line (and the file it had created)")
    check_ok(inst.run(["dpkg", "-r", "tattle"]), "dpkg -r once disabled")
    h.check_equal(inst.status(), "rc", "removed, its configuration kept")
    r = inst.run(["test", "-e", pkg.agent])
    h.check(r.exit_code != 0, "%s is gone" % pkg.agent)
    h.check(os.path.exists(os.path.join(inst.etc, "tattle", "tattle.conf")), "tattle.conf stays after remove")
    check_ok(inst.run(["dpkg", "-P", "tattle"]), "dpkg -P")
    h.check(not os.path.exists(os.path.join(inst.etc, "tattle")), "purge removed /etc/tattle")
    r = inst.run(["test", "-e", "/var/lib/tattle"])
    h.check(r.exit_code != 0, "purge removed /var/lib/tattle")
    h.check_equal(file_state(inst.preload), None, "/etc/ld.so.preload was never written by the package")


@with_installed
def a_daemon_crash_as_nobody_reaches_the_configured_sink_through_the_package(inst):
    pkg = inst.pkg
    for prog in (PROCS, CRASHER):
        h.check(os.path.exists(prog), "the build has %s" % prog)
    server = StandIn()
    try:
        # The admin's configuration: PostHog (the stand-in), the key.
        conf = os.path.join(inst.etc, "tattle", "tattle.conf")
        with open(conf) as f:
            example = f.read()
        with open(conf, "w") as f:
            f.write(example + "\nPOSTHOG_API_KEY=%s\nPOSTHOG_HOST=%s\n" % (KEY, server.url))
        check_ok(inst.run(["tattle", "enable"]), "tattle enable")
        # A daemon started as a service manager would for User=nobody: no
        # LD_PRELOAD, HOME=/nonexistent; the agent comes from /etc/ld.so.preload.
        pid_file = os.path.join(inst.scratch, "daemon.pid")
        r = inst.run(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent",
                      "sh", "-c", 'ulimit -c 0; cd "$1" && exec "$2" daemon "$3"', "sh", inst.scratch, PROCS, pid_file],
                     env={"PATH": OUTER_PATH}, user=NOBODY)
        h.check_equal(r.exit_code, 0, "daemon()'s parent exits at once", r.stderr[-1500:])
        h.check_equal(r.stderr, "", "nothing on the daemon's starter's stderr")
        arrived = server.wait_for(lambda s: s.accepted("$exception"), 30)
        if not arrived:
            # Why: the same crash in the foreground, the agent's lines on.
            why = inst.run(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", "TATTLE_STDERR=1",
                            "sh", "-c", 'ulimit -c 0; cd "$1" && exec "$2" null', "sh", inst.scratch, CRASHER],
                           env={"PATH": OUTER_PATH}, user=NOBODY)
            state = subprocess.run(["nsenter", "-t", str(inst.holder.pid), "-m", "--", "ls", "-la", "/var/lib/tattle"],
                                   capture_output=True, text=True)
            h.check(False, "the daemon's crash reached the PostHog stand-in",
                    "requests: %s" % [(q["status"], q["count"], q["violation"]) for q in server.requests],
                    "the same crash in the foreground with TATTLE_STDERR=1 says:",
                    *[line for line in why.stderr.splitlines() if line.startswith("tattle:")],
                    "/var/lib/tattle in the namespace:", state.stdout)
        with open(pid_file) as f:
            daemon_pid = int(f.read())
        ev = server.accepted("$exception")
        h.check_equal(len(ev), 1, "one $exception event")
        props = ev[0]["properties"]
        h.check_equal(props.get("pid"), daemon_pid, "the event is the daemon's")
        h.check_equal(props["$exception_list"][0]["type"], "SIGSEGV", "a SIGSEGV")
        h.check_equal(server.violations(), [], "every request met PostHog's rules")
        h.check(all(q.get("api_key") == KEY for q in server.requests if q["status"] == 200), "with the file's key")
        state = inst.in_ns("/var/lib/tattle/%d" % NOBODY)
        st = os.lstat(state)
        h.check_equal((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, NOBODY),
                      "nobody's state is /var/lib/tattle/65534, 0700 and theirs")
        # What the admin sees afterwards.
        r = inst.run(["tattle", "status"])
        check_ok(r, "tattle status")
        h.check(r.stdout.startswith("tattle: enabled: /etc/ld.so.preload loads %s\n" % pkg.agent),
                "status says enabled", r.stdout[:500])
        h.check("%d (nobody)" % NOBODY in r.stdout, "status lists nobody's state directory", r.stdout)
        check_no_key(r, "tattle status", KEY)
        r = inst.run(["tattle", "status", "--user", "nobody"])
        check_ok(r, "tattle status --user nobody")
        check_no_key(r, "tattle status --user nobody", KEY)
        if flusher_has("--status"):
            h.check("state-dir=/var/lib/tattle/%d" % NOBODY in r.stdout, "nobody's state directory", r.stdout)
        if flusher_has("--flush"):
            r = inst.run(["tattle", "flush", "--user", "nobody"])
            check_ok(r, "tattle flush --user nobody (nothing waits)")
            check_no_key(r, "tattle flush --user nobody", KEY)
        check_ok(inst.run(["tattle", "disable"]), "tattle disable")
    finally:
        server.stop()


TESTS = {f.__name__: f for f in [
    enable_adds_one_line_and_keeps_the_others,
    enable_twice_keeps_one_line,
    disable_removes_only_its_line,
    without_a_preload_file_enable_creates_it_and_disable_removes_it,
    a_file_without_a_final_newline_keeps_its_bytes,
    a_broken_agent_is_refused_and_the_file_untouched,
    an_agent_others_could_replace_or_without_its_flusher_is_refused,
    only_root_may_enable_or_disable,
    enable_replaces_another_agent_and_leaves_a_mixed_line_alone,
    status_says_enabled_or_disabled_and_never_the_key,
    flush_sends_what_waits_and_says_what_happened,
    the_package_holds_the_agent_where_debian_puts_it,
    the_package_installs_and_removes_without_touching_ld_so_preload,
    a_daemon_crash_as_nobody_reaches_the_configured_sink_through_the_package,
]}

if __name__ == "__main__":
    h.main(TESTS)
