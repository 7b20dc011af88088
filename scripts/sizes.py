#!/usr/bin/env python3
"""sizes.py: files over 1000 lines and functions over 150 lines in the C sources.
usage: scripts/sizes.py [DIR...]   (default: pipeline stages); exit 1 when any is found.
A function is a top-level brace block whose opening line looks like a definition; its
length counts from the signature's first line to the closing brace. Not a C parser."""
import os, re, sys

FILE_MAX, FUNC_MAX = 1000, 150

def functions(lines):
    depth, start, name = 0, None, None
    for i, line in enumerate(lines):
        code = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|//.*', '', line)
        if depth == 0 and '{' in code:
            # walk back to the signature's first line (after a blank, '}' or ';' line)
            j = i
            while j > 0 and lines[j - 1].strip() and not re.match(r'^\s*(}|#|/?\*|//)', lines[j - 1]) \
                    and not lines[j - 1].rstrip().endswith((';', '}')):
                j -= 1
            sig = ' '.join(l.strip() for l in lines[j:i + 1])
            m = re.search(r'([A-Za-z_]\w*)\s*\([^;]*\)\s*(__attribute__\(\(.*\)\)\s*)?\{', sig)
            is_func = m and not re.match(r'\s*(typedef|struct|enum|union|static const|const)\b.*=', sig) \
                and '=' not in sig.split('(')[0]
            start, name = (j, m.group(1)) if is_func else (None, None)
        depth += code.count('{') - code.count('}')
        if depth == 0 and start is not None and '}' in code:
            yield name, start + 1, i - start + 1
            start = None

def main():
    dirs = sys.argv[1:] or ['pipeline', 'stages']
    bad = 0
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if not f.endswith(('.c', '.h')):
                    continue
                p = os.path.join(root, f)
                lines = open(p, encoding='utf-8', errors='replace').read().split('\n')
                if len(lines) - 1 > FILE_MAX:
                    print(f'{p}: {len(lines) - 1} lines (> {FILE_MAX})')
                    bad += 1
                for name, at, n in functions(lines):
                    if n > FUNC_MAX:
                        print(f'{p}:{at}: {name}() {n} lines (> {FUNC_MAX})')
                        bad += 1
    print(f'{bad} over the limits' if bad else 'sizes ok')
    return 1 if bad else 0

if __name__ == '__main__':
    sys.exit(main())
