"""test_security.py - fleet mode (/etc/ld.so.preload) against a hostile local user.

The attacks of shared/reference/security-audit.md, as cases. Each runs in a
private mount namespace (unshare -m) where a copy of /etc is bound over /etc:
its ld.so.preload names a copy of the agent (with its flusher beside it, in a
0755 directory of the scratch tree), its passwd holds the unprivileged test
user (added by useradd run in the namespace, so the real /etc never changes),
and a case may put /etc/tattle/tattle.conf in it. The real /etc, /var/lib and
the user database are never touched; the scratch tree, the processes started
and every mount go away when the script ends.

Programs run through tests/security/become.c, a static helper exec'd by the
namespace's shell right after the bind: it switches to the user and gives
the program exactly the environment the case chose. Being static it never
goes through the loader, so the agent is in the program only (no wrapper with
an agent of its own prints on the program's stderr, or starts a flusher) and
the program keeps the helper's pid (the wait status is its own).

What the cases hold the agent to (the behaviour being implemented):
- secure-execution processes (setuid, setgid, file capabilities) are inert:
  no handler, no flusher, nothing written, chmodded or sent anywhere the
  user's environment names, a pending spool neither sent nor deleted, and a
  crash ends exactly as without the agent;
- /etc/tattle/tattle.conf (NAME=value, # comments) is honoured only when
  owned by root and not writable by group or others, else ignored with one
  line on an ordinary process's stderr; the environment wins over it in an
  ordinary process; TATTLE_REPORT_PRIVILEGED=1 in it (never from the
  environment) makes a crashing setuid-root program report, only where the
  file says (default /var/lib/tattle/0/), silently, events root 0600;
- state paths: no symlink followed, a FIFO never blocks, an existing spool
  directory never chmodded, another user's components refused, only files
  named as tattle names them touched in a spool;
- no chain of flushers from a pending spool under /etc/ld.so.preload; no
  flusher left behind by a host that died mid-crash-record; the flusher's
  settings are the load-time ones (setproctitle); one line per event on
  disk; userinfo of POSTHOG_HOST never printed.

Needs root, unshare -m and (for the file-capability cases) setcap; a case
that cannot run here is skipped with the reason. Every network address is
127.0.0.1.
"""
import fcntl
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

TESTS_DIR = os.path.join(h.BUILD, "tests")
BECOME = os.path.join(TESTS_DIR, "become")
PRIVILEGED = os.path.join(TESTS_DIR, "privileged")
PROCTITLE = os.path.join(TESTS_DIR, "proctitle")
PRETTY = os.path.join(TESTS_DIR, "pretty")
CRASHER = os.path.join(TESTS_DIR, "crasher")
EMITTER = os.path.join(TESTS_DIR, "emitter")
RAW_ACTION = os.path.join(TESTS_DIR, "raw_action")
FLUSHER = os.path.join(os.path.dirname(h.AGENT), "tattle-flusher")

USER = "tattlesec"
IGNORING = "tattle: ignoring /etc/tattle/tattle.conf"
OUTER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
KEY = "phc_tattle_security_test"
ATTACKER_KEY = "phc_attacker_project"
PROFILE = "echo root-only profile\n"
# The sanitizer build's options (scripts/test) reach root's ordinary
# processes, so a sanitized flusher of theirs reports where the run looks.
SANITIZER_ENV = {k: v for k, v in os.environ.items() if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS")}


def asan_flusher():
    """The flusher of an ASan build. Under /etc/ld.so.preload the agent
    comes before ASan's runtime in its library list, which ASan refuses
    unless told verify_asan_link_order=0 (through the environment, so only
    in an ordinary process's flusher)."""
    r = subprocess.run(["readelf", "-d", FLUSHER], capture_output=True, text=True)
    return "libasan.so" in r.stdout  # a NEEDED entry: the runtime is shared, not linked in


def need_an_unsanitized_flusher():
    if asan_flusher():
        raise h.Skip("an ASan flusher refuses to start after the agent in /etc/ld.so.preload, and a privileged "
                     "process's flusher takes no ASAN_OPTIONS from the environment (ignored by design)")


# ---------------------------------------------------------------- helpers

def agent_lines(text):
    return [line for line in text.splitlines() if line.startswith("tattle:")]


def same_as_plain(plain, agent, what):
    """The same death (signal and core flag), stdout and stderr: no tattle: line."""
    h.check_equal(agent.describe(), plain.describe(), "%s ends as it does without the agent" % what,
                  "agent's stderr: %s" % agent.stderr[-1500:])
    h.check_equal(agent.stdout, plain.stdout, "%s prints the same on stdout" % what)
    h.check_equal(agent.stderr, plain.stderr, "%s prints the same on stderr, and no tattle: line" % what,
                  "tattle lines: %s" % agent_lines(agent.stderr))


def snapshot(*roots):
    """Every path under roots (symlinks not followed): type, mode, owner,
    and for regular files size and content hash; for symlinks the target."""
    state = {}
    for root in roots:
        if not os.path.lexists(root):
            state[root] = "absent"
            continue
        paths = [root]
        if os.path.isdir(root) and not os.path.islink(root):
            for d, dirs, files in os.walk(root):
                paths += [os.path.join(d, n) for n in dirs + files]
        for p in paths:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            desc = "%s %04o %d:%d" % (stat.filemode(st.st_mode)[0], stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    desc += " %d bytes %s" % (st.st_size, hashlib.sha256(f.read()).hexdigest()[:16])
            elif stat.S_ISLNK(st.st_mode):
                desc += " -> " + os.readlink(p)
            state[p] = desc
    return state


def check_unchanged(before, after, what, *details):
    diff = ["%s: %s  =>  %s" % (p, before.get(p, "absent"), after.get(p, "absent"))
            for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]
    h.check(not diff, what, *(diff[:30] + list(details)))


def read_events(path):
    """The events file, one JSON object a line; a line that is not is a failure."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    events = []
    for i, line in enumerate(lines):
        try:
            events.append(json.loads(line))
        except ValueError:
            raise h.Failure("FAILED: line %d of %s is one JSON object\n    %r" % (i + 1, path, line[:300]))
    return events


def find_batches(root):
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, n) for n in files if n.endswith(".batch")]
    return sorted(found)


def down_port():
    """A port on 127.0.0.1 where the server is down: a socket bound there
    but not listening (connections are refused, and nobody else can take
    the port meanwhile). Returns the socket; its port is the second item
    of getsockname()."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def proc_stat(pid):
    """(state, utime + stime, starttime) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[11]) + int(fields[12]), int(fields[19])


def flushers(exe):
    """{(pid, starttime)} of the processes running exe (this fleet's flusher)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % name) not in (exe, exe + " (deleted)"):
                continue
        except OSError:
            continue
        st = proc_stat(int(name))
        if st:
            found.add((int(name), st[2]))
    return found


def describe_flushers(exe):
    out = []
    for pid, _ in sorted(flushers(exe)):
        try:
            with open("/proc/%d/wchan" % pid) as f:
                wchan = f.read()
        except OSError:
            wchan = "?"
        st = proc_stat(pid)
        out.append("flusher pid %d: state %s, waiting in %s, %s CPU ticks" % (pid, st and st[0], wchan, st and st[1]))
    return out


class FlusherWatch:
    """Every start of this fleet's flusher: fanotify FAN_OPEN_EXEC on its
    file where the kernel allows it (each exec, with its pid, however short
    the process lives), else /proc sampled every 3 ms (a flusher lives at
    least as long as a crash report takes, tens of milliseconds)."""

    FAN_CLOEXEC, FAN_NONBLOCK, FAN_MARK_ADD, FAN_OPEN_EXEC, AT_FDCWD = 1, 2, 1, 0x1000, -100

    def __init__(self, exe):
        self.exe = exe
        self._seen = set()
        self._lock = threading.Lock()
        self._stop = False
        self._fd = self._fanotify(exe)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _fanotify(self, exe):
        import ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
            fd = libc.fanotify_init(self.FAN_CLOEXEC | self.FAN_NONBLOCK, os.O_RDONLY | getattr(os, "O_LARGEFILE", 0))
        except (OSError, AttributeError):
            return -1
        if fd < 0:
            return -1
        if libc.fanotify_mark(fd, self.FAN_MARK_ADD, self.FAN_OPEN_EXEC, self.AT_FDCWD, exe.encode()) != 0:
            os.close(fd)
            return -1
        return fd

    def _loop(self):
        while not self._stop:
            if self._fd < 0:
                found = flushers(self.exe)
                time.sleep(0.003)
            else:
                found = set()
                if select.select([self._fd], [], [], 0.05)[0]:
                    try:
                        data = os.read(self._fd, 65536)
                    except BlockingIOError:
                        data = b""
                    off = 0
                    while off + 24 <= len(data):
                        length, _, _, _, _, fd, pid = struct.unpack_from("<IBBHQii", data, off)
                        if fd >= 0:
                            os.close(fd)
                        found.add(pid)
                        off += max(length, 24)
            with self._lock:
                self._seen |= found

    def reset(self):
        time.sleep(0.06)  # events already queued belong to what came before
        with self._lock:
            self._seen = set()

    def seen(self):
        time.sleep(0.06)  # let the reader drain what is queued
        with self._lock:
            return sorted(self._seen)

    def stop(self):
        self._stop = True
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)


class Listener:
    """A TCP listener on 127.0.0.1: records every connection (and its
    request line) and answers 200 {"status": 1}, as PostHog does."""

    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, userinfo=""):
        return "http://%s127.0.0.1:%d" % (userinfo, self.port)

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = {"request": "(connected, nothing read yet)"}
            with self._lock:
                self.connections.append(rec)
            threading.Thread(target=self._handle, args=(conn, rec), daemon=True).start()

    def _handle(self, conn, rec):
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < (1 << 20):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            while m and len(body) < int(m.group(1)):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            rec["request"] = head.split(b"\r\n")[0].decode(errors="replace")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                         b"Connection: close\r\n\r\n{\"status\": 1}")
        except OSError:
            pass
        finally:
            conn.close()

    def requests(self):
        with self._lock:
            return [r["request"] for r in self.connections]

    def stop(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def check_nothing_reached(listener, what):
    h.check_equal(listener.requests(), [], what)


def wait_until(predicate, timeout, step=0.01):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def _trusted_parent():
    """A parent for the scratch tree whose every component is owned by root
    and not writable by group or others (/opt), so that the cases do not
    depend on whether the agent lets a root process's state path cross a
    sticky world-writable directory such as /tmp; else /tmp."""
    for cand in ("/opt",):
        p, ok = cand, os.path.isdir(cand)
        while ok and p != "/":
            st = os.lstat(p)
            ok = stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022
            p = os.path.dirname(p)
        if ok:
            return cand
    return tempfile.gettempdir()


# ---------------------------------------------------------------- the fleet

class Fleet:
    """Once per test process: the scratch tree with the agent's copy, the
    /etc copy holding ld.so.preload and the test user, the privileged
    programs."""

    def __init__(self):
        if os.geteuid() != 0:
            raise h.Skip("needs root (setuid programs, a user of its own, mount namespaces)")
        for prog in (BECOME, PRIVILEGED, PROCTITLE, PRETTY, CRASHER, EMITTER, h.AGENT, FLUSHER):
            h.check(os.path.exists(prog), "the build has %s" % prog)
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "mount --bind / /mnt"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise h.Skip("unshare -m with a bind mount is refused here: %s" % r.stderr.strip())
        self.asan = asan_flusher()
        self.root = tempfile.mkdtemp(prefix="tattle-sec-", dir=_trusted_parent())
        self._privileged = {}
        try:
            self._setup()
        except BaseException:
            self.cleanup()
            raise

    def _setup(self):
        os.chmod(self.root, 0o755)
        self.lib = os.path.join(self.root, "lib")
        os.mkdir(self.lib, 0o755)
        self.agent = os.path.join(self.lib, "libtattle.so")
        self.flusher = os.path.join(self.lib, "tattle-flusher")
        shutil.copy(h.AGENT, self.agent)
        shutil.copy(FLUSHER, self.flusher)
        os.chmod(self.agent, 0o755)
        os.chmod(self.flusher, 0o755)
        self.etc = os.path.join(self.root, "etc")
        subprocess.run(["cp", "-a", "/etc", self.etc], check=True)
        for stale in ("ld.so.preload", "tattle"):
            p = os.path.join(self.etc, stale)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
        self.empty = os.path.join(self.root, "empty")
        open(self.empty, "w").close()
        os.chmod(self.empty, 0o644)
        homes = os.path.join(self.root, "home")
        os.mkdir(homes, 0o755)
        self.home = os.path.join(homes, USER)
        # The user exists in the copy only: useradd runs in the namespace
        # (before ld.so.preload is written, so without the agent).
        r = h.run(self.argv(["/usr/sbin/useradd", "-M", "-l", "-d", self.home, "-s", "/bin/sh", USER],
                            {"PATH": OUTER_PATH}), env={"PATH": OUTER_PATH}, cwd=self.root)
        if r.exit_code != 0:
            raise h.Skip("useradd in the namespace's copy of /etc failed: %s" % r.stderr.strip())
        with open(os.path.join(self.etc, "passwd")) as f:
            entry = [line.split(":") for line in f if line.startswith(USER + ":")]
        h.check(entry, "useradd put %s in the copy of /etc/passwd" % USER)
        self.uid, self.gid = int(entry[0][2]), int(entry[0][3])
        os.mkdir(self.home, 0o755)
        os.chown(self.home, self.uid, self.gid)
        self.preload = os.path.join(self.etc, "ld.so.preload")
        self.enable_preload()
        # A root process without a usable home keeps state in
        # /var/lib/tattle/<uid> where that exists: in the namespaces it is
        # a scratch directory, so the host's is never written.
        self.mounts = []
        if os.path.isdir("/var/lib/tattle"):
            scratch = os.path.join(self.root, "var-lib-tattle")
            os.mkdir(scratch, 0o755)
            self.mounts.append("mount --bind %s /var/lib/tattle" % shlex.quote(scratch))

    def enable_preload(self):
        with open(self.preload, "w") as f:
            f.write(self.agent + "\n")
        os.chmod(self.preload, 0o644)

    def argv(self, argv, env, user=False, agent=True, mounts=()):
        """argv as root or the user, with exactly env, in a private mount
        namespace where /etc is the copy (with the agent in ld.so.preload,
        or with an empty one: agent=False)."""
        uid, gid = (self.uid, self.gid) if user else (0, 0)
        cmds = getattr(self, "mounts", []) + list(mounts)
        if agent:
            cmds.append("mount --bind %s /etc" % shlex.quote(self.etc))
        else:
            cmds.append("mount --bind %s %s" % (shlex.quote(self.empty), shlex.quote(self.preload)))
            cmds.append("mount --rbind %s /etc" % shlex.quote(self.etc))
        script = " && ".join(cmds) + ' && exec "$@"'
        envl = ["%s=%s" % kv for kv in env.items()]
        return (["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", BECOME, str(uid), str(gid),
                 str(len(envl))] + envl + list(argv))

    def privileged(self, kind):
        """The privileged test program: setuid (root, 4755), setgid (root:shadow,
        2755) or setcap (cap_dac_read_search+ep)."""
        if kind in self._privileged:
            return self._privileged[kind]
        bindir = os.path.join(self.root, "bin")
        os.makedirs(bindir, 0o755, exist_ok=True)
        path = os.path.join(bindir, "privileged-" + kind)
        shutil.copy(PRIVILEGED, path)
        if kind == "setuid":
            os.chown(path, 0, 0)
            os.chmod(path, 0o4755)
        elif kind == "setgid":
            import grp
            try:
                gid = grp.getgrnam("shadow").gr_gid
            except KeyError:
                gid = 0
            os.chown(path, 0, gid)
            os.chmod(path, 0o2755)
        else:
            os.chmod(path, 0o755)
            setcap = shutil.which("setcap") or shutil.which("setcap", path="/usr/sbin:/sbin")
            if not setcap:
                raise h.Skip("setcap is not installed (libcap2-bin): no file-capability program")
            r = subprocess.run([setcap, "cap_dac_read_search+ep", path], capture_output=True, text=True)
            if r.returncode != 0:
                raise h.Skip("setcap refused here: %s" % r.stderr.strip())
        self._privileged[kind] = path
        return path

    def stop_flushers(self, timeout=5.0):
        """Kill every flusher of this fleet, by pid. With ld.so.preload
        emptied meanwhile, so that a chain of them cannot go on. Returns
        what was killed."""
        killed = set()
        if not flushers(self.flusher):
            return killed
        os.truncate(self.preload, 0)
        try:
            deadline = time.monotonic() + timeout
            quiet_since = None
            while time.monotonic() < deadline:
                found = flushers(self.flusher)
                for pid, start in found:
                    st = proc_stat(pid)
                    if st and st[2] == start:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed.add((pid, start))
                        except ProcessLookupError:
                            pass
                if found:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 0.3:
                    break
                time.sleep(0.005)
        finally:
            self.enable_preload()
        return killed

    def cleanup(self):
        try:
            if getattr(self, "preload", None):
                self.stop_flushers()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_FLEET = None
_FLEET_SKIP = None


def fleet():
    global _FLEET, _FLEET_SKIP
    if _FLEET_SKIP:
        raise h.Skip(_FLEET_SKIP)
    if _FLEET is None:
        try:
            _FLEET = Fleet()
        except h.Skip as e:
            _FLEET_SKIP = str(e)
            raise
    return _FLEET


class Process:
    """A program started in the namespace; its output goes to files."""

    def __init__(self, argv, cwd, stdin):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, env={"PATH": OUTER_PATH}, cwd=cwd, stdin=stdin, stdout=self.out,
                                  stderr=self.err, preexec_fn=h._limits)
        self.pid = self.p.pid

    def stdout(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")

    def finish(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.p.kill()
                os.waitpid(self.pid, 0)
                raise h.Failure("TIMEOUT: pid %d ran past %ss" % (self.pid, timeout))
            time.sleep(0.005)
        self.p.returncode = 0
        elapsed = time.monotonic() - self.t0
        self.err.seek(0)
        run = h.Run(status, self.stdout(), self.err.read().decode(errors="replace"), elapsed)
        self.out.close()
        self.err.close()
        return run


def in_syscall(pid, number):
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[0] == str(number)
    except (OSError, IndexError):
        return False


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def caught_signals(pid):
    with open("/proc/%d/status" % pid) as f:
        return re.search(r"^SigCgt:\s*(\S+)", f.read(), re.M).group(1)


class Case:
    """One case's scratch directories, listener and flusher watch."""

    def __init__(self, fl, name):
        self.fleet = fl
        self.dir = tempfile.mkdtemp(prefix=name[:24] + "-", dir=fl.root)
        os.chmod(self.dir, 0o755)
        self.cwd = self.mkdir("cwd", 0o755, user=True)
        self.roothome = self.mkdir("roothome", 0o700)
        self.userdir = self.mkdir("userdir", 0o755, user=True)
        self.rootonly = self.mkdir("rootonly", 0o700)
        self.rootdir = self.mkdir("rootdir", 0o755)   # where root's ordinary processes write
        self._listener = None
        self._down = {}
        self.watch = FlusherWatch(fl.flusher)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def mkdir(self, rel, mode=0o755, user=False):
        p = self.path(rel)
        os.makedirs(p, exist_ok=True)
        if user:
            os.chown(p, self.fleet.uid, self.fleet.gid)
        os.chmod(p, mode)
        return p

    def write(self, rel, text, mode=0o600, user=False):
        p = self.path(rel)
        with open(p, "w") as f:
            f.write(text)
        if user:
            os.chown(p, self.fleet.uid, self.fleet.gid)
        os.chmod(p, mode)
        return p

    def listener(self, port=0):
        """The case's listener; on port, a port of down_host() brought up."""
        if self._listener is None:
            held = self._down.pop(port, None)
            if held:
                held.close()
            self._listener = Listener(port)
        return self._listener

    def down_host(self):
        """http://127.0.0.1:PORT, a server that is down until listener(PORT)."""
        s = down_port()
        port = s.getsockname()[1]
        self._down[port] = s
        return "http://127.0.0.1:%d" % port

    def user_env(self, **kw):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.fleet.home, "USER": USER, "LOGNAME": USER}
        if self.fleet.asan:
            env["ASAN_OPTIONS"] = "verify_asan_link_order=0"   # the user cannot write the run's log directory
        env.update({k: str(v) for k, v in kw.items()})
        return env

    def root_env(self, **kw):
        env = dict(SANITIZER_ENV, PATH="/usr/bin:/bin", HOME=self.roothome)
        if self.fleet.asan:
            env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
        env.update({k: str(v) for k, v in kw.items()})
        return env

    def run(self, argv, env, user=False, agent=True, mounts=(), timeout=30, stdin=subprocess.DEVNULL):
        return h.run(self.fleet.argv(argv, env, user, agent, mounts), env={"PATH": OUTER_PATH}, cwd=self.cwd,
                     timeout=timeout, stdin=stdin)

    def start(self, argv, env, user=False, agent=True, mounts=(), stdin=subprocess.DEVNULL):
        return Process(self.fleet.argv(argv, env, user, agent, mounts), self.cwd, stdin)

    def write_conf(self, text, uid=0, gid=0, mode=0o644):
        d = os.path.join(self.fleet.etc, "tattle")
        os.makedirs(d, exist_ok=True)
        os.chown(d, 0, 0)
        os.chmod(d, 0o755)
        p = os.path.join(d, "tattle.conf")
        with open(p, "w") as f:
            f.write(text)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        return p

    def settle(self, timeout=12.0):
        """Wait until no flusher of this fleet runs; True if none is left.
        A flusher lingers TATTLE_LINGER_MS (5 s unless the file says) after
        its last process, for the next one to join."""
        return wait_until(lambda: not flushers(self.fleet.flusher), timeout)

    def close(self):
        try:
            self.watch.stop()
            if self._listener:
                self._listener.stop()
            for held in self._down.values():
                held.close()
            self.fleet.stop_flushers()
        finally:
            shutil.rmtree(os.path.join(self.fleet.etc, "tattle"), ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)


def case(fn):
    def test():
        c = Case(fleet(), fn.__name__)
        try:
            fn(c)
        finally:
            c.close()
    test.__name__ = fn.__name__
    return test


def check_secure(run, kind):
    """The loader ran the program as a secure-execution process (else the
    case would test nothing: a nosuid mount, say)."""
    if "secure 1" not in run.stdout:
        raise h.Skip("the %s program did not run with AT_SECURE here (nosuid mount?): %r" % (kind, run.stdout))
    if kind == "setuid":
        h.check(" euid 0 " in run.stdout, "the setuid program runs with euid 0", run.stdout)


def pause_and_signal(c, exe, env, agent, sig=signal.SIGSEGV):
    """Start exe in pause mode as the user, read its caught-signal mask
    once it waits, then signal it (as the user could: same real uid)."""
    p = c.start([exe, "pause"], env, user=True, agent=agent)
    ok = wait_until(lambda: "privileged pause" in p.stdout() and (proc_stat(p.pid) or "?")[0] == "S", 10)
    if not ok:
        p.p.kill()
        p.finish()
        raise h.Failure("FAILED: %s pause started and waited" % exe)
    mask = caught_signals(p.pid)
    os.kill(p.pid, sig)
    return mask, p.finish()


def check_inert(c, kind, envs, snap_roots, listener=None, death_first=False):
    """A secure-execution program crashing under each env (the user's
    hostile environment): nothing changes under snap_roots, nothing reaches
    the listener, no flusher starts, no signal handler is installed, and
    the crash ends exactly as without the agent (checked first with
    death_first, else after what was written and sent)."""
    exe = c.fleet.privileged(kind)
    plain = c.run([exe, "crash"], envs[0], user=True, agent=False)
    check_secure(plain, kind)
    plain_mask, plain_paused = pause_and_signal(c, exe, envs[0], agent=False)
    before = snapshot(*snap_roots)
    c.watch.reset()
    runs = [c.run([exe, "crash"], env, user=True) for env in envs]
    mask, paused = pause_and_signal(c, exe, envs[0], agent=True)
    settled = c.settle()
    seen = c.watch.seen()

    def death():
        for env, run in zip(envs, runs):
            same_as_plain(plain, run, "the %s crash (env %s)" % (kind, sorted(set(env) - {"PATH", "USER", "LOGNAME"})))
        same_as_plain(plain_paused, paused, "the %s program killed by SIGSEGV" % kind)
        h.check_equal(mask, plain_mask, "no signal handler is installed (SigCgt as without the agent)")
    if death_first:
        death()
    check_unchanged(before, snapshot(*snap_roots),
                    "the %s program wrote, created or chmodded nothing where the user's environment points" % kind)
    if listener:
        check_nothing_reached(listener, "no connection reached the user's POSTHOG_HOST")
    death()
    h.check_equal(seen, [], "no tattle-flusher was started")
    h.check(settled, "no tattle-flusher is left")


# ---------------------------------------------------------------- 1. secure execution: inert

@case
def setuid_crash_is_identical_to_a_plain_run(c):
    target = c.write("rootonly/target.txt", PROFILE, 0o600)
    listener = c.listener()
    env = c.user_env(TATTLE_FILE=target, POSTHOG_API_KEY=ATTACKER_KEY, POSTHOG_HOST=listener.url(),
                     TATTLE_SPOOL_DIR=c.path("rootonly/spool"), TATTLE_LINGER_MS=300)
    check_inert(c, "setuid", [env], [c.rootonly, c.fleet.home], listener, death_first=True)


@case
def setuid_crash_writes_nothing_where_the_users_environment_points(c):
    target = c.write("rootonly/target.txt", PROFILE, 0o600)
    envs = [
        c.user_env(TATTLE_FILE=target),                                      # an existing root-only file
        c.user_env(TATTLE_FILE=c.path("rootonly/new/events.jsonl")),         # a file and a directory to create
        c.user_env(XDG_STATE_HOME=c.path("rootonly/xdg")),                   # the default under XDG_STATE_HOME
        c.user_env(HOME=c.path("rootonly/h")),                               # the default under HOME
        c.user_env(),                                                        # the user's own HOME (audit M1)
        c.user_env(TATTLE_FILE=os.path.join(c.userdir, "events.jsonl")),     # a file the user may write
        # Variables the loader removes from a secure process's environment
        # (shifting the rest down): the agent must still know it is one.
        c.user_env(TMPDIR="/tmp", LD_LIBRARY_PATH="/nonexistent", MALLOC_ARENA_MAX="2",
                   TATTLE_FILE=c.path("rootonly/shifted/events.jsonl"), TATTLE_STDERR="1"),
    ]
    check_inert(c, "setuid", envs, [c.rootonly, c.userdir, c.fleet.home])


@case
def setuid_crash_contacts_no_posthog_host_and_chmods_no_spool(c):
    listener = c.listener()
    pub = c.mkdir("pub", 0o755)
    c.write("pub/tool", "#!/bin/sh\n", 0o755)
    sticky = c.mkdir("sticky", 0o1777)
    envs = [c.user_env(POSTHOG_API_KEY=ATTACKER_KEY, POSTHOG_HOST=listener.url(), TATTLE_SPOOL_DIR=d,
                       TATTLE_LINGER_MS=300) for d in (pub, sticky)]
    check_inert(c, "setuid", envs, [pub, sticky, c.fleet.home], listener)


def make_pending_spool(c, env, host):
    """Leave batches in a spool the way a root job does while its server
    (host, with KEY) is down: the agent (LD_PRELOAD, outside the namespace),
    three captures, no linger."""
    env = dict(env, LD_PRELOAD=c.fleet.agent, POSTHOG_API_KEY=KEY, POSTHOG_HOST=host, TATTLE_LINGER_MS="0")
    r = h.run([EMITTER, "0", "3", "exit"], env=env, cwd=c.cwd)
    h.check_equal(r.stdout, "captured 3 errors 0\n", "setup: a root job captured three events", r.stderr)
    h.check(c.settle(), "setup: the root job's flusher exited")
    return r


@case
def setuid_program_neither_sends_nor_deletes_a_pending_spool(c):
    # Root's job captured for a server that was down; it is back now (the
    # listener, on the same port), so anything that sends root's spool,
    # under root's key or the user's, reaches it.
    host = c.down_host()
    job = make_pending_spool(c, c.root_env(), host)
    spool = os.path.join(c.roothome, ".local", "state", "tattle", "spool")
    h.check(find_batches(spool), "setup: the events wait in root's spool under its HOME",
            *(["%s: %s" % kv for kv in sorted(snapshot(c.roothome).items())] + [job.stderr]))
    listener = c.listener(int(host.rsplit(":", 1)[1]))
    before = snapshot(c.roothome)
    c.watch.reset()
    passwd = ["/usr/bin/passwd", "-S", USER]
    exe = c.fleet.privileged("setuid")
    runs = []
    for key in (ATTACKER_KEY, KEY):
        hostile = dict(POSTHOG_API_KEY=key, POSTHOG_HOST=listener.url(), TATTLE_LINGER_MS=300)
        # Stock passwd -S, as the audit did: root's spool reached through HOME.
        env = c.user_env(HOME=c.roothome, **hostile)
        runs.append(("passwd -S", c.run(passwd, env, user=True, agent=False), c.run(passwd, env, user=True)))
        # The setuid test program, with root's spool named by TATTLE_SPOOL_DIR.
        env = c.user_env(TATTLE_SPOOL_DIR=spool, **hostile)
        runs.append(("the setuid program", c.run([exe, "exit"], env, user=True, agent=False),
                     c.run([exe, "exit"], env, user=True)))
    check_secure(runs[1][1], "setuid")
    settled = c.settle()
    check_nothing_reached(listener, "root's pending events were not sent to the user's POSTHOG_HOST")
    check_unchanged(before, snapshot(c.roothome), "root's spool is as it was (nothing sent, deleted or renamed)")
    for what, plain, agent in runs:
        same_as_plain(plain, agent, what)
    h.check_equal(c.watch.seen(), [], "no tattle-flusher was started")
    h.check(settled, "no tattle-flusher is left")
    # Control: the same environment in an ordinary root process that uses
    # the agent (a thread is its first use) does send root's spool there,
    # so the setup above was live.
    c.run([EMITTER, "1", "0", "exit"], c.root_env(POSTHOG_API_KEY=KEY, POSTHOG_HOST=listener.url(), TATTLE_LINGER_MS=300))
    h.check(wait_until(lambda: listener.requests(), 5), "control: an ordinary root process sends root's spool",
            snapshot(c.roothome))


@case
def setgid_crash_is_inert(c):
    listener = c.listener()
    spool = c.mkdir("userdir/spool", 0o755, user=True)
    env = c.user_env(TATTLE_FILE=os.path.join(c.userdir, "events.jsonl"), POSTHOG_API_KEY=ATTACKER_KEY,
                     POSTHOG_HOST=listener.url(), TATTLE_SPOOL_DIR=spool, TATTLE_LINGER_MS=300)
    check_inert(c, "setgid", [env, c.user_env()], [c.userdir, c.fleet.home], listener)


@case
def file_capability_crash_is_inert(c):
    listener = c.listener()
    spool = c.mkdir("userdir/spool", 0o755, user=True)
    env = c.user_env(TATTLE_FILE=os.path.join(c.userdir, "events.jsonl"), POSTHOG_API_KEY=ATTACKER_KEY,
                     POSTHOG_HOST=listener.url(), TATTLE_SPOOL_DIR=spool, TATTLE_LINGER_MS=300)
    check_inert(c, "setcap", [env, c.user_env()], [c.userdir, c.fleet.home], listener)


def su_on_a_pty(c, env, agent):
    """su root as the user on a pty: wait for its password prompt, then
    SIGSEGV it (the user may: same real uid). Returns the run, with what
    the terminal showed as stdout."""
    master, slave = os.openpty()

    def setup():
        h._limits()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    t0 = time.monotonic()
    p = subprocess.Popen(c.fleet.argv(["/usr/bin/su", "root"], env, user=True, agent=agent), env={"PATH": OUTER_PATH},
                         cwd=c.cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=setup)
    os.close(slave)
    out = b""

    def read_some(wait):
        nonlocal out
        if select.select([master], [], [], wait)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return False
            out += chunk
            return bool(chunk)
        return True
    try:
        ok = wait_until(lambda: read_some(0.05) and b"Password" in out and in_syscall(p.pid, 0), 10, 0)
        h.check(ok, "su showed its password prompt and waits for the password", out)
        os.kill(p.pid, signal.SIGSEGV)
        deadline = time.monotonic() + 15
        while True:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
            if pid:
                break
            h.check(time.monotonic() < deadline, "su died within 15 s of its SIGSEGV", out)
            read_some(0.01)
        p.returncode = 0
        while read_some(0.2):
            pass
    finally:
        if p.returncode is None:
            p.kill()
            p.wait()
        os.close(master)
    return h.Run(status, out.decode(errors="replace").replace("\r\n", "\n"), "", time.monotonic() - t0)


@case
def su_on_a_pty_signalled_with_sigsegv_leaves_the_target_untouched(c):
    target = c.write("rootonly/via-su.txt", PROFILE, 0o600)
    env = c.user_env(TATTLE_FILE=target, TATTLE_LINGER_MS=300, TERM="dumb")
    env_new = c.user_env(TATTLE_FILE=c.path("rootonly/new-via-su.txt"), TERM="dumb")
    before = snapshot(c.rootonly, c.fleet.home)
    plain = su_on_a_pty(c, env, agent=False)
    c.watch.reset()
    runs = [su_on_a_pty(c, env, agent=True), su_on_a_pty(c, env_new, agent=True)]
    settled = c.settle()
    check_unchanged(before, snapshot(c.rootonly, c.fleet.home), "su wrote nothing where TATTLE_FILE points")
    for run in runs:
        h.check_equal(run.describe(), plain.describe(), "su ends as it does without the agent")
        h.check_equal(run.stdout, plain.stdout, "the terminal shows the same, and no tattle: line",
                      agent_lines(run.stdout))
    h.check_equal(c.watch.seen(), [], "no tattle-flusher was started")
    h.check(settled, "no tattle-flusher is left")


@case
def unix_chkpwd_killed_by_sigsys_contacts_nothing(c):
    import grp
    try:
        shadow = grp.getgrnam("shadow").gr_gid
    except KeyError:
        raise h.Skip("no shadow group here")
    chkpwd = "/usr/sbin/unix_chkpwd"
    if not os.path.exists(chkpwd) or not os.stat(chkpwd).st_mode & stat.S_ISGID:
        raise h.Skip("no setgid %s here" % chkpwd)
    standin = c.write("shadow-standin", "root:$y$STANDIN$group-shadow-readable-hash:20000:0:99999:7:::\n", 0o640)
    os.chown(standin, 0, shadow)
    listener = c.listener()
    env = c.user_env(TATTLE_FILE=os.path.join(c.userdir, "events.jsonl"), POSTHOG_API_KEY=ATTACKER_KEY,
                     POSTHOG_HOST=listener.url(), TATTLE_LINGER_MS=300, DEBUGINFOD_URLS=listener.url(),
                     DEBUGINFOD_HEADERS_FILE=standin)

    def killed_while_reading(agent):
        rfd, wfd = os.pipe()
        try:
            p = c.start([chkpwd, USER, "nullok"], env, user=True, agent=agent, stdin=rfd)
            ok = wait_until(lambda: exe_of(p.pid) == chkpwd and in_syscall(p.pid, 0), 10)
            if not ok:
                p.p.kill()
                p.finish()
                raise h.Failure("FAILED: unix_chkpwd waits for the password on its stdin")
            os.kill(p.pid, signal.SIGSYS)  # its own handler catches SEGV, BUS, ILL, TRAP: not SYS
            return p.finish()
        finally:
            os.close(rfd)
            os.close(wfd)
    before = snapshot(c.userdir, c.fleet.home)
    plain = killed_while_reading(False)
    c.watch.reset()
    agent = killed_while_reading(True)
    settled = c.settle()
    check_nothing_reached(listener, "nothing reached the user's POSTHOG_HOST or DEBUGINFOD_URLS")
    check_unchanged(before, snapshot(c.userdir, c.fleet.home), "nothing was written where the user's env points")
    same_as_plain(plain, agent, "unix_chkpwd killed by SIGSYS")
    h.check_equal(c.watch.seen(), [], "no tattle-flusher was started")
    h.check(settled, "no tattle-flusher is left")


# ---------------------------------------------------------------- 2. the system configuration file

CONF_COMMENTS = "# tattle, fleet-wide\n# TATTLE_FILE=/nonexistent/commented-out.jsonl\n\n"


def crash_and_capture_as_user(c, env):
    crash = c.run([CRASHER, "null"], env, user=True)
    h.check_equal(crash.signal, signal.SIGSEGV, "the crasher dies of SIGSEGV", crash.stderr[-1500:])
    capture = c.run([EMITTER, "0", "3", "flush"], env, user=True)
    h.check_equal(capture.stdout, "captured 3 errors 0\nflush 0\n", "three captures, flushed", capture.stderr)
    return crash, capture


def check_events_in(path, distinct_id, what):
    evs = read_events(path)
    h.check_equal(sorted(e["event"] for e in evs), ["$exception", "burst", "burst", "burst"], what, path)
    h.check_equal({e["distinct_id"] for e in evs}, {distinct_id}, "the distinct_id of every event")


@case
def the_system_file_configures_an_ordinary_process(c):
    events = os.path.join(c.userdir, "from-conf.jsonl")
    c.write_conf(CONF_COMMENTS + "TATTLE_FILE=%s\n\nTATTLE_DISTINCT_ID=from-the-system-file\n" % events)
    xdg = os.path.join(c.userdir, "xdg")
    crash, capture = crash_and_capture_as_user(c, c.user_env(XDG_STATE_HOME=xdg, TATTLE_STDERR=1))
    check_events_in(events, "from-the-system-file", "the crash and the captures went where the system file says")
    h.check(not os.path.exists(xdg), "nothing went to the default under XDG_STATE_HOME")
    for run in (crash, capture):
        h.check(not [line for line in run.stderr.splitlines() if line.startswith(IGNORING)],
                "a root-owned 0644 file is not ignored", run.stderr[-1500:])


@case
def the_environment_overrides_the_system_file(c):
    from_conf = os.path.join(c.userdir, "from-conf.jsonl")
    from_env = os.path.join(c.userdir, "from-env.jsonl")
    c.write_conf(CONF_COMMENTS + "TATTLE_FILE=%s\nTATTLE_DISTINCT_ID=from-the-system-file\n" % from_conf)
    crash_and_capture_as_user(c, c.user_env(TATTLE_FILE=from_env, TATTLE_DISTINCT_ID="from-the-environment"))
    check_events_in(from_env, "from-the-environment", "the events went where the environment says")
    h.check(not os.path.exists(from_conf), "nothing went where the system file says")


@case
def a_system_file_that_disables_the_agent_gives_the_handlers_back(c):
    """The file is read at first use: a process that started with the
    agent's handlers in place gets its own (the default) back then, and a
    crash afterwards dies as without the agent."""
    events = os.path.join(c.userdir, "events.jsonl")
    env = c.user_env(TATTLE_FILE=events)
    control = c.run([RAW_ACTION], env, user=True)
    h.check_equal(control.stdout, "SIGSEGV: a handler\n", "control: without the file, the agent's handler is in place",
                  control.stderr[-800:])
    c.write_conf(CONF_COMMENTS + "TATTLE_DISABLE=1\n")
    plain = c.run([RAW_ACTION, "crash"], env, user=True, agent=False)
    agent = c.run([RAW_ACTION, "crash"], env, user=True)
    h.check_equal(agent.stdout, "SIGSEGV: default\n", "after the first use the kernel holds the default again",
                  agent.stderr[-800:])
    h.check_equal((agent.signal, agent.stderr), (plain.signal, plain.stderr), "the death is as without the agent")
    h.check(not os.path.exists(events), "no event")


def check_ignored(c, name, events, xdg, env, agent, how):
    crash = c.run([CRASHER, "null"], env, user=True, agent=agent)
    h.check_equal(crash.signal, signal.SIGSEGV, "the crasher dies of SIGSEGV", crash.stderr[-1500:])
    h.check(not os.path.exists(events), "a system file %s is ignored: nothing went where it says" % name)
    said = [line for line in crash.stderr.splitlines() if line.startswith(IGNORING)]
    h.check_equal(len(said), 1, "one line says the file %s is ignored, and why (agent %s)" % (name, how),
                  crash.stderr[-2000:])
    h.check(said[0][len(IGNORING):].strip(" :"), "the line says why", said[0])
    evs = read_events(os.path.join(xdg, "tattle", "events.jsonl"))
    h.check_equal([e["event"] for e in evs], ["$exception"], "the crash went to the default place instead")


@case
def a_system_file_not_root_owned_or_writable_by_others_is_ignored_and_said(c):
    f = c.fleet
    for name, uid, gid, mode in (("owned by the user", f.uid, f.gid, 0o644), ("group-writable", 0, 0, 0o664),
                                 ("writable by others", 0, 0, 0o646)):
        events = os.path.join(c.userdir, "from-conf.jsonl")
        c.write_conf(CONF_COMMENTS + "TATTLE_FILE=%s\n" % events, uid, gid, mode)
        # Asked for with LD_PRELOAD; and put there by /etc/ld.so.preload,
        # where the agent may keep quiet unless TATTLE_STDERR=1 asks.
        for how, agent, extra in (("by LD_PRELOAD", False, {"LD_PRELOAD": f.agent}),
                                  ("from /etc/ld.so.preload, TATTLE_STDERR=1", True, {"TATTLE_STDERR": "1"})):
            xdg = os.path.join(c.userdir, "xdg-%d-%s" % (agent, name.replace(" ", "-")))
            check_ignored(c, name, events, xdg, c.user_env(XDG_STATE_HOME=xdg, **extra), agent, how)


# ---------------------------------------------------------------- 3. opting in privileged programs

def check_root_private(path, what):
    h.check(os.path.exists(path), "%s: %s exists" % (what, path))
    st = os.lstat(path)
    h.check(stat.S_ISREG(st.st_mode), "%s is a regular file" % path)
    h.check_equal((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600), "%s is owned by root, mode 0600" % path)


def opted_in_crash(c, env, conf_events, mounts=()):
    need_an_unsanitized_flusher()
    exe = c.fleet.privileged("setuid")
    plain = c.run([exe, "crash"], env, user=True, agent=False, mounts=mounts)
    check_secure(plain, "setuid")
    before = snapshot(c.userdir, c.fleet.home)
    agent = c.run([exe, "crash"], env, user=True, mounts=mounts)
    settled = c.settle()
    check_root_private(conf_events, "the crash was reported")
    evs = read_events(conf_events)
    h.check_equal([e["event"] for e in evs], ["$exception"], "one event, the crash")
    h.check_equal(evs[0]["properties"]["$exception_list"][0]["type"], "SIGSEGV", "the crash's signal")
    with open(conf_events) as fh:
        text = fh.read()
    h.check("from-the-user" not in text, "nothing of the user's environment is in the event",
            re.findall(r".{40}from-the-user.{40}", text))
    check_unchanged(before, snapshot(c.userdir, c.fleet.home), "nothing went where the user's environment points")
    same_as_plain(plain, agent, "the opted-in setuid crash")
    h.check(settled, "no tattle-flusher is left")


def hostile_user_env(c, listener):
    return c.user_env(TATTLE_FILE=os.path.join(c.userdir, "user.jsonl"), POSTHOG_API_KEY=ATTACKER_KEY,
                      POSTHOG_HOST=listener.url(), XDG_STATE_HOME=os.path.join(c.userdir, "xdg"),
                      TATTLE_SPOOL_DIR=os.path.join(c.userdir, "spool"), TATTLE_STDERR=1,
                      TATTLE_DISTINCT_ID="from-the-user", TATTLE_TAGS="note=from-the-user",
                      TATTLE_RELEASE="from-the-user", TATTLE_LINGER_MS=300)


@case
def opted_in_setuid_root_crash_goes_only_where_the_system_file_says(c):
    rootdir = c.mkdir("private", 0o700)
    conf_events = os.path.join(rootdir, "priv.jsonl")
    c.write_conf(CONF_COMMENTS + "TATTLE_REPORT_PRIVILEGED=1\nTATTLE_FILE=%s\n" % conf_events)
    listener = c.listener()
    opted_in_crash(c, hostile_user_env(c, listener), conf_events)
    check_nothing_reached(listener, "nothing reached the user's POSTHOG_HOST")


@case
def opted_in_setuid_root_crash_defaults_to_var_lib_tattle_0(c):
    # /var/lib/tattle in the namespace only: a bind of a scratch directory
    # where it exists, else an overlay over /var/lib whose upper layer holds
    # it (copy-on-write: the real /var/lib is never written).
    if os.path.isdir("/var/lib/tattle"):
        state = c.mkdir("var-lib-tattle", 0o755)
        mounts = ["mount --bind %s /var/lib/tattle" % shlex.quote(state)]
    else:
        upper = c.mkdir("var-lib-upper", 0o755)
        work = c.mkdir("var-lib-work", 0o755)
        state = c.mkdir("var-lib-upper/tattle", 0o755)
        mounts = ["mount -t overlay overlay -o lowerdir=/var/lib,upperdir=%s,workdir=%s /var/lib" % (upper, work)]
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", mounts[0]], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise h.Skip("/var/lib/tattle does not exist and an overlay over /var/lib is refused: %s"
                         % r.stderr.strip())
    c.write_conf(CONF_COMMENTS + "TATTLE_REPORT_PRIVILEGED=1\n")
    listener = c.listener()
    opted_in_crash(c, hostile_user_env(c, listener), os.path.join(state, "0", "events.jsonl"), mounts)
    check_nothing_reached(listener, "nothing reached the user's POSTHOG_HOST")


@case
def the_opt_in_from_the_environment_is_ignored(c):
    rootdir = c.mkdir("private", 0o700)
    c.write_conf(CONF_COMMENTS + "TATTLE_FILE=%s\n" % os.path.join(rootdir, "priv.jsonl"))
    listener = c.listener()
    env = dict(hostile_user_env(c, listener), TATTLE_REPORT_PRIVILEGED="1")
    check_inert(c, "setuid", [env], [rootdir, c.userdir, c.fleet.home], listener)


@case
def an_opt_in_in_an_untrusted_system_file_is_ignored(c):
    rootdir = c.mkdir("private", 0o700)
    listener = c.listener()
    f = c.fleet
    for uid, gid, mode in ((0, 0, 0o666), (0, 0, 0o664), (f.uid, f.gid, 0o644)):
        c.write_conf(CONF_COMMENTS + "TATTLE_REPORT_PRIVILEGED=1\nTATTLE_FILE=%s\n"
                     % os.path.join(rootdir, "priv.jsonl"), uid, gid, mode)
        try:
            check_inert(c, "setuid", [hostile_user_env(c, listener)], [rootdir, c.userdir, c.fleet.home], listener)
        except h.Failure as e:
            raise h.Failure("%s\n    (with the system file owned by uid %d, mode %04o)" % (e, uid, mode))


@case
def opted_in_setgid_and_file_capability_programs_stay_inert(c):
    rootdir = c.mkdir("private", 0o700)
    c.write_conf(CONF_COMMENTS + "TATTLE_REPORT_PRIVILEGED=1\nTATTLE_FILE=%s\n" % os.path.join(rootdir, "priv.jsonl"))
    listener = c.listener()
    for kind in ("setgid", "setcap"):
        check_inert(c, kind, [hostile_user_env(c, listener)], [rootdir, c.userdir, c.fleet.home], listener)


# ---------------------------------------------------------------- 4. state paths

@case
def a_symlink_at_the_events_path_is_not_followed(c):
    profile = c.write("rootonly/profile.sh", PROFILE, 0o644)
    shared = c.mkdir("shared-tmp", 0o1777)
    planted = os.path.join(shared, "events.jsonl")          # the user's link in a sticky shared directory
    os.symlink(profile, planted)
    os.lchown(planted, c.fleet.uid, c.fleet.gid)
    own = c.rootdir
    root_link = os.path.join(own, "events.jsonl")           # root's own link
    os.symlink(profile, root_link)
    before = snapshot(c.rootonly, shared, own)
    runs = [c.run([CRASHER, "null"], c.root_env(TATTLE_FILE=planted)),
            c.run([CRASHER, "null"], c.root_env(TATTLE_FILE=root_link)),
            c.run([EMITTER, "0", "3", "flush"], c.root_env(TATTLE_FILE=root_link))]
    c.settle()
    check_unchanged(before, snapshot(c.rootonly, shared, own), "nothing was written through the symlinks")
    for run in runs[:2]:
        h.check_equal(run.signal, signal.SIGSEGV, "the crasher still dies of SIGSEGV")


@case
def a_fifo_at_the_events_path_neither_hangs_the_host_nor_leaves_a_flusher(c):
    own = c.rootdir
    root_fifo = os.path.join(own, "events.jsonl")
    os.mkfifo(root_fifo, 0o600)
    shared = c.mkdir("shared-tmp", 0o1777)
    user_fifo = os.path.join(shared, "events.jsonl")
    os.mkfifo(user_fifo, 0o666)
    os.chown(user_fifo, c.fleet.uid, c.fleet.gid)
    for fifo in (root_fifo, user_fifo):
        c.watch.reset()
        r = c.run([CRASHER, "null"], c.root_env(TATTLE_FILE=fifo, TATTLE_LINGER_MS=200), timeout=20)
        h.check_equal(r.signal, signal.SIGSEGV, "the crasher still dies of SIGSEGV", r.stderr[-1500:])
        h.check(r.elapsed < 6.0, "the host died within a few seconds", "took %.2f s" % r.elapsed)
        h.check(c.settle(2.5), "no tattle-flusher is left 2.5 s after the host died (events path a FIFO of %s)"
                % ("root" if fifo == root_fifo else "another user"), describe_flushers(c.fleet.flusher))
        h.check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO is still a FIFO")


@case
def an_existing_spool_directory_is_never_chmodded(c):
    pub = c.mkdir("pub", 0o755)
    c.write("pub/tool", "#!/bin/sh\n", 0o755)
    sticky = c.mkdir("sticky", 0o1777)
    user_spool = c.mkdir("userdir/spool", 0o755, user=True)
    http = dict(POSTHOG_API_KEY=KEY, POSTHOG_HOST=c.down_host(), TATTLE_LINGER_MS=200)
    modes = {d: stat.S_IMODE(os.lstat(d).st_mode) for d in (pub, sticky, user_spool)}
    c.run([CRASHER, "null"], c.root_env(TATTLE_SPOOL_DIR=pub, **http))
    c.run([CRASHER, "null"], c.root_env(TATTLE_SPOOL_DIR=sticky, **http))
    c.run([CRASHER, "null"], c.user_env(TATTLE_SPOOL_DIR=user_spool, **http), user=True)
    c.settle()
    after = {d: stat.S_IMODE(os.lstat(d).st_mode) for d in modes}
    h.check_equal({d: "%04o" % m for d, m in after.items()}, {d: "%04o" % m for d, m in modes.items()},
                  "no existing spool directory was chmodded")


@case
def root_with_another_users_home_follows_none_of_their_symlinks(c):
    f = c.fleet
    profile = c.write("rootonly/profile.sh", PROFILE, 0o600)
    fake_etc = c.mkdir("fake-etc", 0o755)
    c.write("fake-etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
    home = c.mkdir("victim-home", 0o755, user=True)
    for d in (".local", ".local/state", ".local/state/tattle"):
        c.mkdir("victim-home/" + d, 0o755, user=True)
    state = os.path.join(home, ".local", "state", "tattle")
    for name, target in (("events.jsonl", profile), ("spool", fake_etc)):
        os.symlink(target, os.path.join(state, name))
        os.lchown(os.path.join(state, name), f.uid, f.gid)
    roots = [c.rootonly, fake_etc, home]
    before = snapshot(*roots)
    http = dict(POSTHOG_API_KEY=KEY, POSTHOG_HOST=c.down_host(), TATTLE_LINGER_MS=200)
    for env in (c.root_env(HOME=home), c.root_env(HOME=home, **http),
                c.root_env(XDG_STATE_HOME=os.path.join(home, ".local", "state")),
                c.root_env(XDG_STATE_HOME=os.path.join(home, ".local", "state"), **http)):
        r = c.run([CRASHER, "null"], env)
        h.check_equal(r.signal, signal.SIGSEGV, "the crasher still dies of SIGSEGV")
    c.settle()
    check_unchanged(before, snapshot(*roots),
                    "root wrote, created and chmodded nothing through the other user's home")


@case
def unrelated_files_in_the_spool_directory_are_left_alone(c):
    victim = c.mkdir("victim-data", 0o700)
    files = {"important.dropped": "7\n", "archive-2023.rejected": "x" * (3 << 20), "payroll.batch": "salary data\n",
             "unrelated.txt": "hello\n"}
    for name, text in files.items():
        c.write("victim-data/" + name, text, 0o644)
    before = {n: v for n, v in snapshot(victim).items() if os.path.basename(n) in files}
    env = c.root_env(TATTLE_SPOOL_DIR=victim, TATTLE_SPOOL_MAX_MB=1, POSTHOG_API_KEY=KEY,
                     POSTHOG_HOST=c.down_host(), TATTLE_LINGER_MS=200)
    r = c.run([CRASHER, "null"], env)
    h.check_equal(r.signal, signal.SIGSEGV, "the crasher still dies of SIGSEGV")
    c.run([EMITTER, "0", "3", "flush"], env)
    c.settle()
    after = snapshot(victim)
    check_unchanged(before, {n: v for n, v in after.items() if os.path.basename(n) in files},
                    "no file tattle did not name was deleted, renamed or changed",
                    "the directory now: %s" % sorted(os.listdir(victim)))


# ---------------------------------------------------------------- 5-6. processes

@case
def a_pending_spool_under_ld_so_preload_starts_no_chain_of_flushers(c):
    spool = os.path.join(c.roothome, "spool")
    host = c.down_host()    # down, and staying down
    job = make_pending_spool(c, c.root_env(TATTLE_SPOOL_DIR=spool), host)
    h.check(find_batches(spool), "setup: a batch waits in the spool",
            *(["%s: %s" % kv for kv in sorted(snapshot(spool).items())] + [job.stderr]))
    env = c.root_env(TATTLE_SPOOL_DIR=spool, POSTHOG_API_KEY=KEY, POSTHOG_HOST=host, TATTLE_LINGER_MS=200)
    c.watch.reset()
    t0 = time.monotonic()
    # A program whose first use of the agent is starting a thread: it
    # captures nothing, so the only flusher it may start is the sender.
    r = c.run([EMITTER, "1", "0", "exit"], env)
    h.check_equal((r.exit_code, r.stderr), (0, ""), "the program exits 0 and prints nothing on stderr")
    time.sleep(max(0.0, t0 + 3.0 - time.monotonic()))
    started = c.watch.seen()
    left = not c.settle(1.5)
    h.check(len(started) <= 2, "at most 2 tattle-flushers in the 3 s after it",
            "%d seen (and still starting: %s)" % (len(started), left))
    h.check(started, "control: its first use found the pending batch and started its sender")
    h.check(not left, "no tattle-flusher is left 4.5 s later (TATTLE_LINGER_MS=200)", flushers(c.fleet.flusher))


@case
def a_host_killed_mid_crash_record_leaves_no_flusher_behind(c):
    events = os.path.join(c.rootdir, "events.jsonl")
    c.watch.reset()
    r = c.run([CRASHER, "null"], c.root_env(TATTLE_FILE=events, TATTLE_TEST_FAULT="die-mid-record",
                                            TATTLE_LINGER_MS=200))
    h.check_equal(r.signal, signal.SIGKILL, "TATTLE_TEST_FAULT=die-mid-record killed the host mid-record",
                  r.describe(), r.stderr[-1500:])
    time.sleep(3.0)
    left = sorted(flushers(c.fleet.flusher))
    cpu = {}
    for pid, _ in left:
        a = proc_stat(pid)
        time.sleep(0.5)
        b = proc_stat(pid)
        if a and b:
            cpu[pid] = b[1] - a[1]
    h.check_equal(left, [], "no tattle-flusher is left 3 s after its host died mid-record",
                  "CPU ticks used over 0.5 s: %s" % cpu, "seen during the run: %s" % c.watch.seen())


# ---------------------------------------------------------------- 7-9. what the flusher is told, and what is printed

@case
def a_setproctitle_daemon_keeps_its_load_time_settings(c):
    good_dir = c.mkdir("good", 0o755)
    bad_dir = c.mkdir("bad", 0o755)
    good = os.path.join(good_dir, "events-named-at-start.jsonl")
    injected = os.path.join(bad_dir, "injected.jsonl")
    env = c.root_env(TATTLE_FILE=good, HOME=c.path("home-of-the-daemon-long-enough-to-hold-the-injected-path"))
    for where in ("home", "file"):
        r = c.run([PROCTITLE, where, injected], env)
        h.check("title set" in r.stdout and r.signal == signal.SIGSEGV,
                "the daemon overwrote its environment block where %s= was, then crashed" % where.upper(),
                r.describe(), r.stdout, r.stderr[-1500:])
    c.settle()
    h.check(not os.path.exists(injected), "nothing went to the path the process title injected",
            read_events(injected)[:1])
    h.check_equal([e["event"] for e in read_events(good)], ["$exception", "$exception"],
                  "both crashes went to the TATTLE_FILE given at start")


@case
def pretty_printed_properties_stay_one_line_each(c):
    events = os.path.join(c.rootdir, "events.jsonl")
    r = c.run([PRETTY], c.root_env(TATTLE_FILE=events))
    h.check_equal(r.stdout, "captures 0 0 0 flush 0\n", "the three captures and the flush succeed", r.stderr)
    with open(events, "rb") as f:
        lines = f.read().split(b"\n")
    h.check_equal(lines[-1], b"", "the file ends with a newline")
    h.check_equal(len(lines) - 1, 3, "exactly three lines, one per event", *[l[:200] for l in lines])
    evs = read_events(events)
    h.check_equal([e["event"] for e in evs], ["before", "pretty", "after"], "the three events, in order")
    props = evs[1]["properties"]
    h.check_equal({k: props.get(k) for k in ("plan", "seats", "owner")},
                  {"plan": "pro", "seats": 3, "owner": {"name": "Ada", "roles": ["admin", "billing"]}},
                  "the pretty event's properties are intact")


@case
def userinfo_in_posthog_host_is_never_printed(c):
    listener = c.listener()
    env = c.root_env(POSTHOG_API_KEY=KEY, POSTHOG_HOST=listener.url("user:hunter2@"),
                     TATTLE_SPOOL_DIR=os.path.join(c.roothome, "spool"), TATTLE_LINGER_MS=200, TATTLE_STDERR=1)
    r = c.run([CRASHER, "null"], env)
    h.check_equal(r.signal, signal.SIGSEGV, "the crasher still dies of SIGSEGV")
    h.check("tattle:" in r.stderr, "the crash report is printed", r.stderr[-1500:])
    h.check("hunter2" not in r.stderr, "the password in POSTHOG_HOST is not printed",
            [line for line in r.stderr.splitlines() if "hunter2" in line])
    capture = c.run([EMITTER, "0", "3", "flush"], env)
    h.check("hunter2" not in capture.stderr, "nor by a capturing process",
                [line for line in capture.stderr.splitlines() if "hunter2" in line])


TESTS = {f.__name__: f for f in [
    setuid_crash_is_identical_to_a_plain_run,
    setuid_crash_writes_nothing_where_the_users_environment_points,
    setuid_crash_contacts_no_posthog_host_and_chmods_no_spool,
    setuid_program_neither_sends_nor_deletes_a_pending_spool,
    setgid_crash_is_inert,
    file_capability_crash_is_inert,
    su_on_a_pty_signalled_with_sigsegv_leaves_the_target_untouched,
    unix_chkpwd_killed_by_sigsys_contacts_nothing,
    the_system_file_configures_an_ordinary_process,
    the_environment_overrides_the_system_file,
    a_system_file_that_disables_the_agent_gives_the_handlers_back,
    a_system_file_not_root_owned_or_writable_by_others_is_ignored_and_said,
    opted_in_setuid_root_crash_goes_only_where_the_system_file_says,
    opted_in_setuid_root_crash_defaults_to_var_lib_tattle_0,
    the_opt_in_from_the_environment_is_ignored,
    an_opt_in_in_an_untrusted_system_file_is_ignored,
    opted_in_setgid_and_file_capability_programs_stay_inert,
    a_symlink_at_the_events_path_is_not_followed,
    a_fifo_at_the_events_path_neither_hangs_the_host_nor_leaves_a_flusher,
    an_existing_spool_directory_is_never_chmodded,
    root_with_another_users_home_follows_none_of_their_symlinks,
    unrelated_files_in_the_spool_directory_are_left_alone,
    a_pending_spool_under_ld_so_preload_starts_no_chain_of_flushers,
    a_host_killed_mid_crash_record_leaves_no_flusher_behind,
    a_setproctitle_daemon_keeps_its_load_time_settings,
    pretty_printed_properties_stay_one_line_each,
    userinfo_in_posthog_host_is_never_printed,
]}

if __name__ == "__main__":
    try:
        h.main(TESTS)
    finally:
        if _FLEET is not None:
            _FLEET.cleanup()
