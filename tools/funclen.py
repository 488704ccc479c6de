#!/usr/bin/env python3
"""funclen.py: C functions longer than a limit (default 80 lines), counted
from the line of the signature's name to the closing brace. Usage:
  tools/funclen.py [--max N] [--main N] FILE...
Prints "file:line: name: N lines" for each function over the limit (and
each main() over --main), and exits 1 if there is any."""
import re
import sys


def functions(text):
    """Yield (name, first_line, n_lines) for every top-level function."""
    depth = 0
    i = 0
    n = len(text)
    line = 1
    start = None
    name = None
    stmt_start = 0
    while i < n:
        c = text[i]
        if c == '\n':
            line += 1
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            line += text.count('\n', i, j)
            i = j
            continue
        if text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
            continue
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            line += text.count('\n', i, j)
            i = j + 1
            continue
        if c == '#' and depth == 0 and (i == 0 or text[i - 1] == '\n'):
            while i < n and not (text[i] == '\n' and text[i - 1] != '\\'):
                i += 1
            stmt_start = i
            continue
        if c == '{':
            if depth == 0:
                head = text[stmt_start:i]
                m = re.search(r'(\w+)\s*\([^;{}]*\)\s*$', head, re.S)
                if m and not re.search(r'=\s*$|\b(struct|enum|union)\b[^(]*$',
                                       head[:m.start()]):
                    name = m.group(1)
                    start = line - head[m.start():].count('\n')
                else:
                    name = None
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                if name:
                    yield name, start, line - start + 1
                name = None
                stmt_start = i + 1
        elif c == ';' and depth == 0:
            stmt_start = i + 1
        i += 1


def main(argv):
    limit, main_limit, files = 80, 60, []
    it = iter(argv)
    for a in it:
        if a == '--max':
            limit = int(next(it))
        elif a == '--main':
            main_limit = int(next(it))
        else:
            files.append(a)
    bad = 0
    for f in files:
        with open(f, encoding='utf-8', errors='replace') as fh:
            text = fh.read()
        for name, first, count in functions(text):
            lim = main_limit if name == 'main' else limit
            if count > lim:
                print(f"{f}:{first}: {name}: {count} lines")
                bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
