#!/usr/bin/python3
"""FFmpeg's configure options as Debian's own ffmpeg package uses them.

    ffmpeg_full_config.py DEBIAN_TARBALL FFMPEG_TREE OUT_FLAGS OUT_NOTE [--install-deps]

DEBIAN_TARBALL is the Debian source package's ffmpeg_*.debian.tar.xz (apt-get
source --download-only fetches it); FFMPEG_TREE the FFmpeg source tree of the
same version. It evaluates debian/rules (the shared CONFIG plus the standard
flavour's, as make would on amd64/linux with no build profile), then:

  * --install-deps: apt-get installs the Build-Depends of debian/control that
    this Debian release has (first alternative; a package it lacks is listed);
  * keeps each --enable-X whose library FFmpeg's configure would find: the
    `enabled X && require_pkg_config X "module >= version" ...` line of
    FFMPEG_TREE/configure is checked with pkg-config (version included), a
    `require X header ...` line by the header; an option whose library is
    missing or too old is dropped and listed in OUT_NOTE with the reason.

Installation directories and the shared-library flavour are left out (our
build is static, run from the build tree); every feature option stays.
OUT_FLAGS: one option a line.
"""
import os
import re
import shlex
import subprocess
import sys
import tarfile

VARS = {
    "DEB_HOST_ARCH": "amd64", "DEB_HOST_ARCH_CPU": "amd64", "DEB_HOST_ARCH_OS": "linux",
    "DEB_HOST_ARCH_ENDIAN": "little", "DEB_HOST_MULTIARCH": "x86_64-linux-gnu",
    "DEB_BUILD_PROFILES": "", "DEB_BUILD_OPTIONS": "", "CC": "cc", "CXX": "g++",
}
# Not features: where Debian installs, and its own version string.
DROP_ALWAYS = ("--prefix=", "--libdir=", "--incdir=", "--extra-version=", "--enable-shared",
               "--disable-static", "--arch=", "--cc=", "--cxx=")


def expand(s, variables):
    """$(VAR) and $(filter PATTERNS,TEXT) of make, enough for debian/rules' conditions."""
    def one(m):
        body = m.group(1)
        if body.startswith("filter "):
            pats, text = body[len("filter "):].split(",", 1)
            pats = [re.compile("^" + re.escape(p).replace("%", ".*") + "$") for p in pats.split()]
            return " ".join(w for w in text.split() if any(p.match(w) for p in pats))
        return variables.get(body, "")
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"\$\(([^()$]*)\)", one, s)
    return s


def condition(line, variables):
    m = re.match(r"(ifeq|ifneq)\s*\((.*)\)\s*$", line)
    a, b = expand(m.group(2), variables).split(",", 1)
    same = a.strip() == b.strip()
    return same if m.group(1) == "ifeq" else not same


def evaluate_rules(text):
    """The value of CONFIG + CONFIG_standard after evaluating the conditionals."""
    lines, buf = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    values = {}
    stack = []  # (active, taken)
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        active = all(a for a, _ in stack)
        if s.startswith(("ifeq", "ifneq")):
            c = condition(s, {**VARS, **values}) if active else False
            stack.append((c, c))
            continue
        if s == "else":
            a, taken = stack.pop()
            stack.append((not taken, True))
            continue
        if s == "endif":
            stack.pop()
            continue
        if not active:
            continue
        m = re.match(r"(CONFIG(?:_standard)?)\s*(:=|\+=|=)\s*(.*)$", s)
        if m:
            name, op, val = m.groups()
            words = shlex.split(val)
            values[name] = (values.get(name, []) if op == "+=" else []) + words
    return values.get("CONFIG", []) + values.get("CONFIG_standard", [])


def checks_from_configure(path):
    """option name -> list of (kind, arg) from `enabled NAME && require...` lines."""
    checks = {}
    text = open(path, encoding="utf-8", errors="replace").read().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"\s*enabled\s+(\w+)\s+&&\s*(.*)$", line)
        if not m:
            continue
        name, rest = m.groups()
        for part in re.split(r"&&|\|\||;", rest):
            part = part.strip().strip("{}() ").strip()
            try:
                w = shlex.split(part)
            except ValueError:
                continue
            if len(w) >= 3 and w[0] in ("require_pkg_config", "check_pkg_config") and w[1] == name:
                checks.setdefault(name, []).append(("pkg", w[2]))
            elif len(w) >= 3 and w[0] in ("require", "require_headers", "check_lib") and w[1] == name:
                checks.setdefault(name, []).append(("header", w[2]))
            elif len(w) >= 2 and w[0] == "require_headers":
                checks.setdefault(name, []).append(("header", w[1]))
    return checks


def available(kind, arg):
    if kind == "pkg":
        spec = arg.replace(">=", " >= ").replace("<=", " <= ")
        r = subprocess.run(["pkg-config", "--exists", "--print-errors", spec],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return True, ""
        have = subprocess.run(["pkg-config", "--modversion", arg.split()[0].split(">")[0]],
                              capture_output=True, text=True)
        return False, ("pkg-config %s: has %s" % (arg, have.stdout.strip()) if have.returncode == 0
                       else "pkg-config %s: not found" % arg)
    r = subprocess.run(["cc", "-E", "-x", "c", "-"],
                       input="".join("#include <%s>\n" % h for h in arg.split()),
                       capture_output=True, text=True)
    return r.returncode == 0, "" if r.returncode == 0 else "header <%s> not found" % arg


def build_depends(control):
    m = re.search(r"^Build-Depends:(.*?)(?=^[A-Za-z-]+:|\Z)", control, re.S | re.M)
    body = "\n".join(l for l in m.group(1).splitlines() if not l.strip().startswith("#"))
    pkgs = []
    for dep in body.split(","):
        first = dep.split("|")[0].strip()
        if not first:
            continue
        arch = re.search(r"\[(.*?)\]", first)
        if arch and not any(a in ("amd64", "linux-any", "any") for a in arch.group(1).split()):
            if not arch.group(1).startswith("!"):
                continue
        prof = re.search(r"<(.*?)>", first)
        if prof and not prof.group(1).strip().startswith("!"):
            continue  # only with a build profile we do not use
        pkgs.append(re.split(r"[\s(\[<]", first)[0])
    return pkgs


def installed(p):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def install_deps(pkgs, note):
    have, missing = [], []
    # Build tools the machine has in another form: debhelper-compat is a
    # virtual package of the packaging itself; pkgconf would replace the
    # pkg-config this build already uses.
    pkgs = [p for p in pkgs if p != "debhelper-compat" and not installed(p)
            and not (p == "pkgconf" and installed("pkg-config"))]
    for p in pkgs:
        r = subprocess.run(["apt-cache", "policy", p], capture_output=True, text=True)
        cand = re.search(r"Candidate:\s*(\S+)", r.stdout)
        (have if cand and cand.group(1) != "(none)" else missing).append(p)
    note.append("Build-Depends this Debian release lacks: %s" % (" ".join(missing) or "none"))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + have,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        # One package at a time, so that one unsatisfiable package drops alone.
        for p in have:
            r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", p],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                note.append("Build-Depends not installable here: %s (%s)" %
                            (p, (r.stdout + r.stderr).strip().splitlines()[-1]))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 4:
        raise SystemExit(__doc__)
    deb, tree, out_flags, out_note = args
    with tarfile.open(deb) as tar:
        rules = tar.extractfile("debian/rules").read().decode()
        control = tar.extractfile("debian/control").read().decode()
    note = []
    if "--install-deps" in sys.argv:
        install_deps(build_depends(control), note)
    opts = [o for o in evaluate_rules(rules) if not o.startswith(DROP_ALWAYS)]
    checks = checks_from_configure(os.path.join(tree, "configure"))
    keep, dropped = [], []
    for o in opts:
        m = re.match(r"--enable-(\w+)$", o)
        name = m.group(1) if m else None
        reasons = []
        for kind, arg in checks.get(name, []) if name else []:
            ok, why = available(kind, arg)
            if ok:
                reasons = []
                break
            reasons.append(why)
        if reasons:
            dropped.append("%s (%s)" % (o, "; ".join(reasons)))
        else:
            keep.append(o)
    note.append("Debian's options kept: %d; dropped (library missing or too old here): %d" %
                (len(keep), len(dropped)))
    note += ["  dropped " + d for d in dropped]
    with open(out_flags, "w") as f:
        f.write("\n".join(keep) + "\n")
    with open(out_note, "w") as f:
        f.write("\n".join(note) + "\n")
    print("\n".join(note))


if __name__ == "__main__":
    main()
