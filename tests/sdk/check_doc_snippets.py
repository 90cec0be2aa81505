#!/usr/bin/env python3
"""Keeps the C snippets of the SDK docs true.

Usage: check_doc_snippets.py CC... -- INCLUDE_DIR SOURCE_ROOT DOC.md...

Every ```c block of each DOC is one of:
  - a quote of a sample: the line before the fence is
    <!-- from samples/FILE.c -->, and the block must appear verbatim in
    that file (which the build compiles, in tree and, in test sdk, out of
    tree against the installed SDK);
  - code: compiled with CC -fsyntax-only -Werror against INCLUDE_DIR's
    headers (vfpm/device.h, vfpm/server.h), after a prelude of standard
    includes. A block whose fence is preceded by <!-- continues --> is
    appended to the block before it (one translation unit).
Any other marker, a doc without C blocks, a quote not found or a compile
error fails the test, naming the doc and line.
"""
import os
import re
import subprocess
import sys

PRELUDE = """\
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vfpm/device.h>
#include <vfpm/server.h>
"""

MARK = re.compile(r'^<!--\s*(from (samples/[\w.-]+\.c)|continues)\s*-->$')


def blocks(path):
    """(first line number, marker line or '', body) for each ```c block."""
    out = []
    lines = open(path, encoding='utf-8').read().split('\n')
    i = 0
    while i < len(lines):
        if lines[i].strip() == '```c':
            start = i + 1
            prev = lines[i - 1].strip() if i > 0 else ''
            j = start
            while j < len(lines) and lines[j].strip() != '```':
                j += 1
            if j == len(lines):
                sys.exit(f'{path}:{i + 1}: unterminated ```c block')
            out.append((start, prev if prev.startswith('<!--') else '',
                        '\n'.join(lines[start:j]) + '\n'))
            i = j
        i += 1
    return out


def main():
    argv = sys.argv[1:]
    sep = argv.index('--')
    cc, (incdir, root, *docs) = argv[:sep], argv[sep + 1:]
    failed = 0
    for doc in docs:
        units = []       # [first line, source]
        quotes = 0
        found = blocks(doc)
        if not found:
            print(f'not ok - {doc}: no ```c block')
            failed += 1
            continue
        for line, mark, body in found:
            where = f'{os.path.basename(doc)}:{line}'
            m = MARK.match(mark) if mark else None
            if mark and not m:
                print(f'not ok - {where}: unknown marker {mark}')
                failed += 1
            elif m and m.group(2):
                src = open(os.path.join(root, m.group(2)), encoding='utf-8').read()
                if body in src:
                    quotes += 1
                    print(f'ok - {where}: quotes {m.group(2)} verbatim')
                else:
                    print(f'not ok - {where}: not found verbatim in {m.group(2)}')
                    failed += 1
            elif m:
                if not units:
                    print(f'not ok - {where}: continues nothing')
                    failed += 1
                else:
                    units[-1][1] += f'#line {line + 1} "{doc}"\n' + body
            else:
                units.append([line, f'#line {line + 1} "{doc}"\n' + body])
        for line, src in units:
            where = f'{os.path.basename(doc)}:{line}'
            cmd = cc + ['-std=gnu11', '-fsyntax-only', '-Wall', '-Wextra', '-Werror',
                        '-Wno-unused-parameter', '-Wno-unused-function',
                        '-Wno-unused-variable', '-I', incdir, '-x', 'c', '-']
            r = subprocess.run(cmd, input=PRELUDE + src, capture_output=True, text=True)
            if r.returncode:
                print(f'not ok - {where}: does not compile\n{r.stderr}')
                failed += 1
            else:
                print(f'ok - {where}: compiles')
        print(f'# {doc}: {len(units)} compiled, {quotes} quoted')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
