#!/usr/bin/env python3
"""Checks that `src/` imports run one way: no module uses a module above it.

The order is the one in the README's Layout section, from the top:

    lib -> debug_panel -> diagnostics -> runtime -> instance -> messages -> asset -> engine
        -> host -> kv -> files
    remote -> trust, files      (beside the chain; only lib uses it)
    leaves, usable from anywhere: sandbox, trust, source, capabilities, stamps

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
"""
import pathlib
import re
import sys

CHAIN = ["lib", "debug_panel", "diagnostics", "runtime", "instance", "messages", "asset",
         "engine", "host", "kv", "files"]
LEAVES = {"sandbox", "trust", "source", "capabilities", "stamps"}
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


def main():
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
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
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print("imports must run one way (README, Layout)", file=sys.stderr)
        return 1
    print("imports run one way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
