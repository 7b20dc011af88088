#!/usr/bin/env python3
"""cycles.py: circles between source files of libbgfm, from the object files' symbols.
usage: scripts/cycles.py BUILD_DIR [--allow A.c:B.c ...]   (e.g. build); exit 1 when any
circle is found that is not allowed (a known one, waiting for its owner, named explicitly).
File A depends on file B when A's object uses a global symbol that B's object defines;
a circle is a strongly connected group of two or more files (printed with the symbols
that close it)."""
import os, subprocess, sys

def symbols(obj):
    out = subprocess.run(['nm', '-g', obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == 'U':
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in 'TDBRVWC':
            defined.add(parts[2])
    return defined, used

def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    allowed = set()
    for a in sys.argv[2:]:
        if a != '--allow':
            allowed.add(frozenset(a.split(':')))
    root = os.path.join(build, 'obj')
    objs = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith('.o'):
                src = os.path.relpath(os.path.join(d, f), root)[:-2] + '.c'
                if src != 'pipeline/engine/main.c' and os.path.exists(src):
                    objs[src] = symbols(os.path.join(d, f))
    owner = {s: f for f, (defs, _) in objs.items() for s in defs}
    edges = {f: {} for f in objs}
    for f, (_, used) in objs.items():
        for s in used:
            g = owner.get(s)
            if g and g != f:
                edges[f].setdefault(g, []).append(s)
    # Tarjan's strongly connected components
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while True:
                w = stack.pop(); on.discard(w); c.append(w)
                if w == v: break
            comps.append(c)
    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index: visit(v)
    bad = [sorted(c) for c in comps if len(c) > 1]
    for c in [c for c in bad if frozenset(c) in allowed]:
        print('circle (allowed): ' + ' <-> '.join(c))
    bad = [c for c in bad if frozenset(c) not in allowed]
    for c in bad:
        print('circle: ' + ' <-> '.join(c))
        for a in c:
            for b in c:
                if b in edges[a]:
                    print(f'  {a} uses {b}: {", ".join(sorted(edges[a][b])[:6])}')
    print(f'{len(objs)} files, {len(bad)} circle(s)')
    return 1 if bad else 0

if __name__ == '__main__':
    sys.exit(main())
