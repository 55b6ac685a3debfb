#!/usr/bin/python3
"""The layering check (docs/architecture.md, "Layers").

Reads the symbol tables of the library's objects (nm) and fails when a source
file uses a symbol defined by a file of a higher layer, when files use each
other in a cycle (two files calling each other, or longer), or when an object
belongs to no layer (a new file must be placed in docs/architecture.md's
table and here).

    tools/check_layers.py BUILD/obj [SRC]   prints the file graph and the verdict

With SRC (the source folder), objects without a SRC/NAME.c (left by a
source since removed) are ignored, with a note.

Exit status 0 when the layering holds, 1 otherwise (every violation printed)."""
import collections
import glob
import os
import subprocess
import sys

# Bottom to top; a file may use files of its own layer or below. The same
# table is docs/architecture.md's.
LAYERS = [
    ("base", ["amx", "balance", "error", "largealloc", "memlimit", "paths", "scratch", "vmath", "vmath_avx2"]),
    ("backend", ["backend", "backend_dnnl", "backend_int8", "gemm", "linear_bf16", "linear_small", "linear_amx", "int8_amx"]),
    ("ops", ["ops", "attention", "attention_amx", "rows_probe"]),
    ("networks", ["gguf", "gpt", "vqgan", "sampler", "grid"]),
    ("pipeline", ["model", "placements", "prefix", "temporal", "window", "sequence", "memo"]),
    ("api", ["session", "sample", "follow"]),
]


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRVW":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
    return defined, used


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    objs = sorted(glob.glob(os.path.join(sys.argv[1], "*.o")))
    if len(sys.argv) == 3:
        # with the source folder: an object left in the build folder by a source
        # since removed is not the library's
        stale = [o for o in objs if not os.path.exists(
            os.path.join(sys.argv[2], os.path.basename(o)[:-2] + ".c"))]
        for o in stale:
            print("check_layers: %s ignored: no %s.c in %s" % (o, os.path.basename(o)[:-2], sys.argv[2]))
        objs = [o for o in objs if o not in stale]
    if not objs:
        sys.exit("check_layers: no objects in %s" % sys.argv[1])
    layer = {f: k for k, (_, files) in enumerate(LAYERS) for f in files}
    owner, uses = {}, {}
    for o in objs:
        f = os.path.basename(o)[:-2]
        defined, used = symbols(o)
        for s in defined:
            owner[s] = f
        uses[f] = used
    graph = collections.defaultdict(set)
    via = collections.defaultdict(set)
    for f, used in uses.items():
        graph[f]
        for s in used:
            g = owner.get(s)
            if g and g != f:
                graph[f].add(g)
                via[(f, g)].add(s)
    bad = 0
    for f in sorted(graph):
        if f not in layer:
            print("check_layers: src/%s.c is in no layer (add it to docs/architecture.md and tools/check_layers.py)" % f)
            bad += 1
    for f in sorted(graph):
        for g in sorted(graph[f]):
            if f in layer and g in layer and layer[g] > layer[f]:
                print("check_layers: upward call: src/%s.c (%s) uses src/%s.c (%s): %s" % (
                    f, LAYERS[layer[f]][0], g, LAYERS[layer[g]][0], ", ".join(sorted(via[(f, g)]))))
                bad += 1
    for comp in cycles(graph):
        print("check_layers: files using each other: %s" % " <-> ".join("src/%s.c" % f for f in comp))
        bad += 1
    for name, files in LAYERS:
        present = [f for f in files if f in graph]
        print("  %-9s %s" % (name, " ".join(
            "%s -> %s" % (f, ",".join(sorted(graph[f])) or "-") for f in present)))
    print("check_layers: %d objects, %d violations" % (len(graph), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
