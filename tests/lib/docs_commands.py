"""docs_commands.py ROOT BUILD SANDBOX [--list]: run every command shown in a fenced code block of
README.md and docs/*.md, as written, in SANDBOX (which looks like the repository: build/
-> BUILD, a copy of jobs/, `bgfm` on PATH), and print TAP lines. Commands on the SKIP list
(below, each with its reason), and a command that is the same as one already run and
passed (its text without a trailing `# comment`: runs/demo is retrained by each), are
printed as "# SKIP" lines and not run; every other command must exit 0. Then the example messages of docs/errors.md are produced and
compared word for word (paths under /data/ stand for the sandbox's data folder).
Run by tests/e2e/docs_commands.sh; not a documentation linter beyond that."""
import glob, os, re, shutil, subprocess, sys, time, zlib

ROOT, BUILD, S = sys.argv[1], sys.argv[2], sys.argv[3]
SUBCOMMANDS = ("run", "validate", "submit", "synth", "inspect", "grad", "export", "report",
               "scale", "doc")

# (file, pattern on the command, reason): the explicit list of what is not run.
SKIP = [
    ("", r"^make (demo|test|check|fuzz|fuzz-build)\b",
     "installs packages and runs the whole demo, suite, sanitizers or fuzzers (long; CI runs them)"),
    ("", r"^tests/fuzz/run\.sh", "fuzzing, 600 s per target"),
    ("", r"^tests/lib/slurm-local\.sh", "needs the local Slurm daemons (e2e/slurm_local runs it)"),
    ("", r"^sbatch ", "needs a Slurm cluster"),
    ("", r"^bgfm submit (jobs/braingfm\.yaml|p\.yaml)$",
     "submits to Slurm (sbatch); the --dry-run form is run"),
    ("", r"PIPELINE\.yaml|\[--", "a synopsis with placeholders, not a command"),
    ("docs/results.md", r"", "the transfer study of results.md: a 264-subject cohort, 20 epochs, several seeds and protocols (about an hour)"),
    ("docs/synth.md", r"data/pop", "264 subjects x 150 volumes: 4 minutes and 9 GB per run"),
    ("docs/scaling.md", r"--ranks 1,2,4", "9 or more pipeline runs, 4 ranks on this machine (long); README's 1,2 study is run"),
    ("docs/probe.md", r"runs/x$", "an example workdir name"),
]
# The cohort every runs/demo command reads: made as scripts/demo.sh (make demo) makes it,
# with fewer unlabelled subjects (8 for 32) so that the test stays short.
DEMO_COHORT = ("bgfm synth --out data/demo --subjects 16 --unlabelled 8 --volumes 120 --tr 2.0 "
               "--voxel-size 3 --sites 2 --seed 7 --quiet")
FIRST = []


def commands():
    out = []
    files = ["README.md"] + sorted(glob.glob("docs/*.md"))
    files = [f for f in FIRST if f in files] + [f for f in files if f not in FIRST]
    for f in files:
        inblock, lang, cont = False, "", None
        for i, line in enumerate(open(os.path.join(ROOT, f)), 1):
            s = line.rstrip("\n")
            m = re.match(r"\s*```(\w*)", s)
            if m:
                inblock, lang = not inblock, m.group(1)
                continue
            if not inblock or lang not in ("", "sh", "bash", "console", "shell"):
                continue
            t = s.strip()
            if cont is not None:  # a command continued with a backslash
                cont = (cont[0], cont[1], cont[2][:-1] + " " + t)
                if not t.endswith("\\"):
                    out.append(cont)
                    cont = None
                continue
            if t.startswith("$ "):
                t = t[2:]
            w = t.split()
            if not w:
                continue
            first = w[0]
            bgfm = first in ("bgfm", "build/bgfm") or (first == "mpirun" and "build/bgfm" in t)
            if bgfm and not any(x in SUBCOMMANDS for x in w[1:3] + w[3:5]):
                continue  # output text such as "bgfm reader, all volumes: ..."
            if not (bgfm or first in ("make", "sbatch", "python3")
                    or re.match(r"tests/\S+\.sh$", first)):
                continue
            if t.endswith("\\"):
                cont = (f, i, t)
                continue
            out.append((f, i, t))
    return out


def skip_reason(f, cmd):
    for sf, pat, why in SKIP:
        if (not sf or sf == f) and re.search(pat, cmd):
            return why
    return None


def sandbox():
    os.makedirs(os.path.join(S, "bin"), exist_ok=True)
    os.symlink(BUILD, os.path.join(S, "build"))
    os.symlink(os.path.join(BUILD, "bgfm"), os.path.join(S, "bin", "bgfm"))
    shutil.copytree(os.path.join(ROOT, "jobs"), os.path.join(S, "jobs"))
    os.symlink(os.path.join(ROOT, "tests"), os.path.join(S, "tests"))  # python3 tests/reference/...
    env = dict(os.environ)
    # Debian's python3 (with h5py, numpy, torch) before any other on this PATH
    env["PATH"] = os.path.join(S, "bin") + ":/usr/bin:" + env["PATH"]
    rc, out = run(DEMO_COHORT, env)
    if rc:
        sys.exit("not ok - the demo cohort: " + out[-300:])
    return env


def run(cmd, env, timeout=900):
    p = subprocess.run(["bash", "-c", cmd], cwd=S, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    # mpirun's closing banner hides the reason: keep bgfm's own lines at the end
    own = [l for l in out.splitlines() if l.startswith("bgfm")]
    return p.returncode, out + ("\n" + "\n".join(own[-3:]) if own else "")


def report(ok, desc, out=""):
    print(("ok - " if ok else "not ok - ") + desc)
    if not ok:
        for l in out.strip().splitlines()[-8:]:
            print("#   " + l)
    sys.stdout.flush()


def error_examples(env):
    """docs/errors.md's example messages, produced here and compared (paths /data/ ->
    the sandbox's data folder)."""
    text = open(os.path.join(ROOT, "docs/errors.md")).read()
    block = text[text.index("## Messages"):]
    want = [l for l in block.split("```")[1].splitlines() if l.startswith("bgfm: error:")]
    data = os.path.join(S, "data")
    tiny = os.path.join(ROOT, "tests/lib/tiny_bids.py")
    subprocess.run([sys.executable, tiny, data, "--subjects", "2", "--volumes", "24"],
                   check=True, stdout=subprocess.DEVNULL)
    head = ("name: x\nworkdir: %s/runs/x\ninputs:\n  bids: %s/bids\natlases:\n"
            "  - {name: tiny, path: %s/atlas.nii.gz}\n" % (data, data, data))
    stages = "stages:\n  - {name: parc, uses: parcellate}\n"
    open(os.path.join(S, "x.yaml"), "w").write(head + "atlasses: []\n" + stages)
    got = [run("bgfm validate x.yaml", env)[1]]
    open(os.path.join(S, "x.yaml"), "w").write(
        head.replace("atlas.nii.gz", "atlas-missing.nii.gz") + stages)
    got.append(run("bgfm run x.yaml --quiet", env)[1])
    # sub-02 cut inside volume 5 of 24: the deflate stream stops there (no end, no trailer)
    img = os.path.join(data, "bids/sub-02/func/sub-02_task-rest_bold.nii.gz")
    import gzip, struct
    raw = gzip.decompress(open(img, "rb").read())
    off = int(struct.unpack("<f", raw[108:112])[0])
    vol = (len(raw) - off) // 24
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    open(img, "wb").write(z.compress(raw[:off + 4 * vol + vol // 2]) + z.flush(zlib.Z_SYNC_FLUSH))
    open(os.path.join(S, "x.yaml"), "w").write(head + stages)
    got.append(run("mpirun --oversubscribe -np 2 bgfm run x.yaml --quiet", env)[1])
    lock = os.path.join(data, "runs/x/.bgfm")
    os.makedirs(lock, exist_ok=True)
    holder = subprocess.Popen(["flock", os.path.join(lock, "lock"), "sleep", "60"])
    try:
        for _ in range(50):  # until the holder has the lock
            if subprocess.run(["flock", "-n", os.path.join(lock, "lock"), "true"]).returncode:
                break
            import time
            time.sleep(0.1)
        got.append(run("bgfm run x.yaml --quiet", env)[1])
    finally:
        holder.kill()
        holder.wait()
    for i, w in enumerate(want[:4]):
        line = w.replace("/data/", data + "/")
        ok = any(line == l.strip() for l in got[i].splitlines())
        report(ok, "docs/errors.md example %d produced word for word: %s" % (i + 1, w[:70]),
               got[i])
    if len(want) > 4:
        print("# SKIP docs/errors.md example 5 (the form of an MPI failure; its call, line "
              "and error string vary)")


def main():
    if len(sys.argv) > 4 and sys.argv[4] == "--list":  # the plan, nothing run
        for f, line, cmd in commands():
            why = skip_reason(f, cmd)
            print("%s %s:%d: %s%s" % ("SKIP" if why else "RUN ", f, line, cmd,
                                     " (%s)" % why if why else ""))
        return
    t0 = time.time()
    env = sandbox()
    print("# the demo cohort: %.1f s" % (time.time() - t0))
    n_run = n_skip = 0
    done = {}  # a command already run (its text without a trailing comment) -> where
    for f, line, cmd in commands():
        why = skip_reason(f, cmd)
        key = re.sub(r"\s+#.*$", "", cmd).strip()
        if not why and key in done:
            why = "the same command as %s, which ran and passed" % done[key]
        if why:
            print("# SKIP %s:%d: %s (%s)" % (f, line, cmd, why))
            n_skip += 1
            continue
        t0 = time.time()
        rc, out = run(cmd, env)
        report(rc == 0, "%s:%d: %s (exit %d)" % (f, line, cmd, rc), out)
        if rc == 0:
            done.setdefault(key, "%s:%d" % (f, line))
        print("#   %.1f s" % (time.time() - t0))
        n_run += 1
    print("# %d commands run, %d on the skip list" % (n_run, n_skip))
    error_examples(env)


main()
