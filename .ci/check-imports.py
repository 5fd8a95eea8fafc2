#!/usr/bin/env python3
"""Checks that `src/` imports run one way: no module uses a module above it.

The order is the one in ARCHITECTURE.md, from the top:

    lib -> debug_panel -> diagnostics -> runtime -> instance -> messages -> asset -> engine
        -> host -> kv -> files
    remote -> trust, files      (beside the chain; only lib uses it)
    leaves, usable from anywhere: sandbox, trust, source, capabilities, stamps
    (and book_tests, the documentation's doc tests, which uses nothing)

A module may use any module below it in the chain and any leaf (`stamps`,
the event stamps of key-value and component changes alike, is one); a leaf
uses no other module of the crate. A child module may use its parent
(`super::`), which this check does not look at.

One exception: a public module (`pub mod` in lib.rs) may re-export, in its
own file (`sandbox.rs`, `kv/mod.rs`), any module's names with `pub use
crate::...`. That is the module's public face, the names a game reaches
through it (`sandbox::MAX_TASKS`, defined in `host`), not a use: nothing in
the module depends on them.
Reads every `crate::<module>` path outside comments.

Inside a module folder, its files must not use each other in a circle
either (`runtime/lifecycle.rs` uses `delivery.rs`, which never uses
`lifecycle.rs`): a sibling is used through `super::<name>` (or
`super::super::<name>` from a file one folder deeper) or
`crate::<module>::<name>`.
"""
import pathlib
import re
import sys

CHAIN = ["lib", "debug_panel", "diagnostics", "runtime", "instance", "messages", "asset",
         "engine", "host", "kv", "files"]
LEAVES = {"sandbox", "trust", "source", "capabilities", "stamps", "book_tests"}
BESIDE = {"remote": {"trust", "files"}}


def allowed(module, used):
    if module == "lib" or used in LEAVES and module not in LEAVES:
        return True
    if module in LEAVES:
        return False
    if module in BESIDE:
        return used in BESIDE[module]
    if used in BESIDE:
        return False
    return CHAIN.index(used) > CHAIN.index(module)


def public_modules(src):
    """The modules lib.rs declares `pub mod name;`, by the file that is each one's face."""
    lib = (src / "lib.rs").read_text()
    names = re.findall(r"^pub mod ([a-z_]+);", lib, re.MULTILINE)
    return {pathlib.Path(f"{name}.rs") for name in names} | {
        pathlib.Path(name, "mod.rs") for name in names}


def code_of(path):
    """The file's text without `//` comments."""
    return "\n".join(line.split("//", 1)[0] for line in path.read_text().splitlines())


def sibling_uses(folder, sibling, siblings):
    """The siblings that `sibling` (a file or a folder of `folder`) uses."""
    own = folder / f"{sibling}.rs"
    files = [own] if own.exists() else sorted((folder / sibling).rglob("*.rs"))
    used = set()
    for path in files:
        depth = len(path.relative_to(folder).parts) - 1
        up = "super::" * (depth + 1) if path.name != "mod.rs" else "super::" * depth
        code = code_of(path)
        prefixes = [re.escape(up)] if up else []
        crate_path = "crate::" + "::".join(folder.relative_to(SRC).parts) + "::"
        prefixes.append(re.escape(crate_path))
        for prefix in prefixes:
            for group in re.findall(prefix + r"\{([^}]*)\}", code):
                used |= {name.strip().split("::")[0] for name in group.split(",")}
            used |= set(re.findall(prefix + r"([a-z_]+)\b", code))
    return (used & siblings) - {sibling}


def sibling_circles(src):
    """Files of one module folder that use each other in a circle."""
    errors = []
    for folder in sorted(path.parent for path in src.rglob("mod.rs")):
        siblings = {p.stem for p in folder.glob("*.rs") if p.name != "mod.rs"}
        siblings |= {p.name for p in folder.iterdir() if p.is_dir()}
        uses = {name: sibling_uses(folder, name, siblings) for name in siblings}
        for start in sorted(uses):
            path = circle_from(start, uses)
            if path and path[0] == min(path[:-1]):
                where = folder.relative_to(src)
                errors.append(f"{where}/: its files use each other in a circle: "
                              + " -> ".join(path))
    return errors


def circle_from(start, uses):
    """A circle of uses back to `start`, if there is one: [start, ..., start]."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        name, path = stack.pop()
        for used in sorted(uses.get(name, ())):
            if used == start:
                return path + [start]
            if used not in seen:
                seen.add(used)
                stack.append((used, path + [used]))
    return None


SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def main():
    src = SRC
    faces = public_modules(src)
    errors = []
    for path in sorted(src.rglob("*.rs")):
        relative = path.relative_to(src)
        module = relative.parts[0].removesuffix(".rs")
        known = set(CHAIN) | LEAVES | set(BESIDE)
        if module not in known:
            errors.append(f"{relative}: module `{module}` has no place in the import order")
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//", 1)[0]
            if module != "lib" and re.search(r"\bcrate::[A-Z]", code):
                errors.append(f"{relative}:{number}: a root re-export hides where a name "
                              f"comes from; use its module's path: {line.strip()}")
            if relative in faces and re.match(r"\s*pub use crate::", code):
                continue  # the public module's face, not a use
            for used in re.findall(r"\bcrate::([a-z_]+)", code):
                if used == module or used not in known:
                    continue  # itself, or a name re-exported at the root
                if not allowed(module, used):
                    errors.append(f"{relative}:{number}: `{module}` uses `{used}`, "
                                  f"which is not below it: {line.strip()}")
    errors += sibling_circles(src)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print("imports must run one way (ARCHITECTURE.md)", file=sys.stderr)
        return 1
    print("imports run one way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
