#!/usr/bin/env python3
"""Where a callgrind dump's instructions go, per request: the functions
with the most exclusive (self) Ir, and the share of each crate or library.

    python3 loadtest/ir_profile.py DUMP REQUESTS [--top N]

Reads `callgrind_annotate --inclusive=no --auto=no DUMP` and prints markdown: a
table of the top N functions (Ir/request, share of the dump's total, the
source file holding most of it), then one line of shares by crate. A
function that callgrind splits over several source files (inlined code
is counted in the function it was inlined into) is summed over them.

The frames that were on the stack when the dump was taken (`main`,
`block_on`, the accept loop...) are listed by callgrind_annotate with
about the whole total as their own; any entry above half the total is
one of those, and is left out. Standard library and valgrind only.
"""

import argparse
import collections
import re
import subprocess
import sys

# "1,234 (5.67%)  path/to/file.rs:crate::function [/path/to/object]"
LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?[^:]):(?!:)(.*?)(?: \[[^\]]*\])?$")
# the crate or library a source file belongs to
CRATE = re.compile(r"(?:^|/)([A-Za-z0-9_]+?)-\d+\.\d+\.\d+[^/]*/")


def short(source):
    """`source` without the registry's or the toolchain's prefix."""
    source = re.sub(r"^.*/registry/src/[^/]+/", "", source)
    source = re.sub(r"^/rustc/[0-9a-f]+/", "", source)
    return source.removeprefix("./")


def crate_of(source, function):
    """A short name for where `source` (the file callgrind names) lives."""
    if source.startswith(("proxy/", "ring/")) or "/proxy/src/" in source or "/ring/src/" in source:
        return "shardproxy"
    if "memmove" in source or "memcpy" in source or "memset" in source:
        return "glibc memcpy/memmove/memset"
    if "malloc" in source or function.startswith(("_rjem", "je_", "malloc", "free")):
        return "malloc/free"
    if source.startswith(("library/", "/rustc/")) or "/library/" in source:
        return "std/core/alloc"
    found = CRATE.search(source)
    if found:
        return found.group(1)
    return "other (" + source.rsplit("/", 1)[-1] + ")"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump")
    parser.add_argument("requests", type=int)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", args.dump],
        check=True, capture_output=True, text=True,
    ).stdout
    total = None
    by_function = collections.Counter()
    files = collections.defaultdict(collections.Counter)
    for line in annotated.splitlines():
        if total is None and line.rstrip().endswith("PROGRAM TOTALS"):
            total = int(line.split()[0].replace(",", ""))
            continue
        found = LINE.match(line)
        if not found or total is None or "=>" in line:
            continue
        ir = int(found.group(1).replace(",", ""))
        source, function = found.group(2), found.group(3)
        if ir > total / 2:
            continue  # a frame on the stack at the dump
        by_function[function] += ir
        files[function][source] += ir
    if not total:
        sys.exit(f"ir_profile: no PROGRAM TOTALS in callgrind_annotate's output for {args.dump}")
    per_request = total / args.requests
    print("| # | function | Ir/request | share | file (most of it) |")
    print("|---:|---|---:|---:|---|")
    top = by_function.most_common(args.top)
    for rank, (function, ir) in enumerate(top, 1):
        source = files[function].most_common(1)[0][0]
        print(f"| {rank} | `{function}` | {ir / args.requests:,.0f} | {100 * ir / total:.2f}% | `{short(source)}` |")
    listed = sum(ir for _, ir in top)
    print()
    print(f"These {len(top)}: {100 * listed / total:.1f}% of the total "
          f"({listed / args.requests:,.0f} of {per_request:,.0f} Ir/request).")
    crates = collections.Counter()
    for function, sources in files.items():
        for source, ir in sources.items():
            crates[crate_of(source, function)] += ir
    shares = ", ".join(f"{name} {100 * ir / total:.1f}%" for name, ir in crates.most_common(10))
    print()
    print(f"By crate or library (by source file; inlined std code counts as std): {shares}.")


if __name__ == "__main__":
    main()
