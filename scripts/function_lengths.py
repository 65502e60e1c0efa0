#!/usr/bin/env python3
"""function_lengths.py [--max N] FILE...: the functions of C++ files longer than N lines (default 80).

A function is a definition that starts at column 0 (or column 4 inside a
class) with its opening brace at the end of its signature, and ends at the
closing brace at the same indentation. Prints "path:line: name: N lines" for
each one over the limit, then the longest; exit 1 when any is over.
"""
import re
import sys


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if not re.search(r"\)\s*(const)?\s*(noexcept)?\s*(->\s*[\w:<>]+)?\s*\{$", lines[i]):
            i += 1
            continue
        # the signature may span lines: back to the line after a ; { } or blank line
        start = i
        while start > 0 and lines[start - 1].strip() and not re.search(r"[;{}]\s*$|^\s*//|^#", lines[start - 1]):
            start -= 1
        head = lines[start]
        indent = re.match(r"^ *", head).group(0)
        if len(indent) > 4 or re.match(r"^\s*(if|for|while|switch|namespace|struct|class|enum|else|do|return)\b", head) \
                or "=" in head.split("(")[0]:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end] != indent + "}" and not lines[end].startswith(indent + "};"):
            end += 1
        name = re.search(r"([\w:~]+)\s*\(", head)
        yield start + 1, name.group(1) if name else head.strip(), end - start + 1
        i = end + 1


def main():
    args = sys.argv[1:]
    limit = 80
    if args[:1] == ["--max"]:
        limit, args = int(args[1]), args[2:]
    over, longest = 0, (0, "")
    for path in args:
        for line, name, n in functions(path):
            if n > longest[0]:
                longest = (n, f"{path}:{line}: {name}")
            if n > limit:
                print(f"{path}:{line}: {name}: {n} lines")
                over += 1
    print(f"longest: {longest[1]}: {longest[0]} lines; {over} over {limit}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
