#!/usr/bin/env python3
"""lib/core is one-way: no file calls a function of a file that (directly or
through others) calls back into it. Builds the file-level call graph from
the non-static functions each .c file defines and the calls each makes,
and fails on any cycle, naming it. Usage: check_core_layers.py LIB_CORE_DIR
"""
import collections
import glob
import os
import re
import sys

DEF = re.compile(r'^(?:VFPM_EXPORT\s+)?(?!static\b)[A-Za-z_][\w\s\*]*?\b(\w+)\([^;{]*\)\s*\n\{', re.M)


def strip(src):
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', src)


def graph(d):
    files = sorted(glob.glob(os.path.join(d, '*.c')))
    text = {os.path.basename(f): strip(open(f).read()) for f in files}
    defs = {}
    for f, s in text.items():
        for m in DEF.finditer(s):
            defs[m.group(1)] = f
    edges = collections.defaultdict(set)
    why = {}
    for f, s in text.items():
        for name, owner in defs.items():
            if owner != f and re.search(r'\b' + name + r'\s*\(', s):
                edges[f].add(owner)
                why.setdefault((f, owner), name)
    return edges, why


def find_cycle(edges):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if not state.get(n):
            c = visit(n)
            if c:
                return c
    return None


def main():
    edges, why = graph(sys.argv[1])
    if not edges:
        print('no call edges found: wrong directory?')
        return 1
    cycle = find_cycle(edges)
    for f in sorted(edges):
        print(f'{f} -> {", ".join(sorted(edges[f]))}')
    if cycle:
        path = ' -> '.join(f'{a} ({why[(a, b)]}())' for a, b in zip(cycle, cycle[1:]))
        print(f'FAIL: lib/core has an import cycle: {path} -> {cycle[-1]}')
        return 1
    print('lib/core call graph is acyclic')
    return 0


if __name__ == '__main__':
    sys.exit(main())
