#!/usr/bin/env python3
"""Checks that the crate root holds the agreed names, no more and no fewer.

The root is what `src/lib.rs` makes public at its top level: each name a
`pub use` brings in (the alias after `as`, if any), each `pub mod`, and each
item lib.rs defines itself (`pub struct HotWasmPlugin`), whatever its
`#[cfg]`. Items inside a module (the prelude, an inline `pub mod`) are not
the root. The agreed list is `.ci/api-root.txt`, one name per line (`#`
starts a comment).

A name belongs at the root when a game uses it day to day; the rest lives in
its module (`kv`, `trust`, `capabilities`, `sandbox`, ...). Growing the root
is a decision, made by adding the name to the list in the same commit.
"""
import pathlib
import re
import sys


# What `code_of` blanks: comments, raw strings, strings and character
# literals (a lifetime such as `'a` is none of them).
NOT_CODE = re.compile(r"""//[^\n]*|/\*.*?\*/|\br(#*)".*?"\1|"(?:\\.|[^"\\])*"|'(?:\\.[^']*|[^'\\])'""",
                      re.DOTALL)


def code_of(text):
    """`text` without what is not code, whose braces would not count."""
    return NOT_CODE.sub(" ", text)


def names_in_use(tree):
    """The names a `use` tree (what follows `pub use`) brings in."""
    depth, start, parts = 0, 0, []
    for at, char in enumerate(tree):
        if char == "{":
            depth += 1
            if depth == 1:
                start = at + 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(tree[start:at])
        elif char == "," and depth == 1:
            parts.append(tree[start:at])
            start = at + 1
    if "{" not in tree:
        tree = tree.strip()
        alias = re.search(r"\bas\s+(\w+)$", tree)
        return [alias.group(1)] if alias else [tree.rsplit("::", 1)[-1]]
    prefix = tree[: tree.index("{")]
    if prefix.strip() and not prefix.strip().endswith("::"):
        raise ValueError(f"unexpected use tree: {tree}")
    names = []
    for part in parts:
        if part.strip():
            names.extend(names_in_use(part))
    return names


def root_names(lib):
    """Every name src/lib.rs makes public at the crate root."""
    code = code_of(lib)
    names = []
    depth, at = 0, 0
    while at < len(code):
        char = code[at]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and re.match(r"\bpub\s", code[at:]) and (at == 0 or not code[at - 1].isalnum()):
            item = re.match(r"pub\s+use\s+([^;]*);", code[at:], re.DOTALL)
            if item:
                names.extend(names_in_use(item.group(1)))
                at += item.end()
                continue
            item = re.match(r"pub\s+(?:mod|struct|enum|fn|const|static|trait|type|union)\s+(\w+)",
                            code[at:])
            if item:
                names.append(item.group(1))
        at += 1
    return names


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    found = root_names((root / "src" / "lib.rs").read_text())
    agreed_file = root / ".ci" / "api-root.txt"
    agreed = [line.split("#", 1)[0].strip() for line in agreed_file.read_text().splitlines()]
    agreed = [name for name in agreed if name]
    errors = []
    for name in sorted({name for name in found if found.count(name) > 1}):
        errors.append(f"src/lib.rs makes `{name}` public at the root more than once")
    for name in sorted(set(found) - set(agreed)):
        errors.append(f"new at the root: `{name}` (src/lib.rs)")
    for name in sorted(set(agreed) - set(found)):
        errors.append(f"gone from the root: `{name}` (still in .ci/api-root.txt)")
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print("the crate root changed: add the name to .ci/api-root.txt on purpose, "
              "or put it in its module", file=sys.stderr)
        return 1
    print(f"the crate root holds its {len(set(found))} agreed names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
