#!/usr/bin/env python3
"""Every relative link in the README, the book and the other Markdown pages resolves.

A link to a file must name a file or folder that exists; a link with
`#anchor` must name a heading of the page it points to (anchors as GitHub
and mdBook make them: lower case, punctuation dropped, spaces to `-`).
Links in code blocks and to other sites are not checked.
"""

import functools
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [
    "README.md",
    "ARCHITECTURE.md",
    "CHANGELOG.md",
    "benches/README.md",
    "examples/README.md",
    "guests/README.md",
    "wit/deps/keyvalue/README.md",
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def slug(heading):
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(page):
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.*)$", text)}


def pages():
    found = [ROOT / page for page in PAGES if (ROOT / page).exists()]
    return found + sorted((ROOT / "docs" / "src").rglob("*.md"))


def main():
    broken = []
    for page in pages():
        text = FENCE.sub("", page.read_text())
        text = INLINE_CODE.sub("", text)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue  # another site, or mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not resolved.exists():
                broken.append(f"{where}: no {path}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    if broken:
        print("\n".join(broken))
        sys.exit(f"{len(broken)} broken links")
    print(f"links resolve ({len(pages())} pages)")


if __name__ == "__main__":
    main()
