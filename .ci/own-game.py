#!/usr/bin/env python3
"""A game made from nothing by the README's quick start, outside this repository.

Runs the quick start (the fenced blocks between `<!-- ANCHOR: quick_start -->`
and `<!-- ANCHOR_END: quick_start -->` in README.md, which the book
includes) as a newcomer would, in a temporary folder, against the crates
`cargo package` made (unpacked, through a `[patch.crates-io]` in the
folder's `.cargo/config.toml`), with the
repository's `hotwasm` command on PATH for `cargo install hotwasm-cli`:
then runs the game (under Xvfb when there is no display), waits for the
script to start, run its per-frame hook and answer the game's ping, edits
the script, rebuilds it with `hotwasm build` and waits for the running game
to swap it in with its state.

usage: .ci/own-game.py   (after `cargo package` and a build of hotwasm-cli)
"""

import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# The game's own build folder, kept between runs like the workspace's.
GAME_TARGET = pathlib.Path(
    os.environ.get(
        "OWN_GAME_TARGET_DIR", pathlib.Path.home() / ".cache/bevy_hotwasm/own-game-target"
    )
)
LIBRARIES = ["hotwasm-events", "hotwasm-sdk", "bevy_hotwasm"]
# Waits are for conditions; these only bound a run that went wrong.
FIRST_START = 300  # seconds: the first start compiles the module
RELOAD = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def quick_start():
    """The quick start's fenced blocks, in order, as (language, text)."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- ANCHOR: quick_start -->(.*?)<!-- ANCHOR_END: quick_start -->", readme, re.S)
    if not match:
        sys.exit("README.md has no <!-- ANCHOR: quick_start --> ... <!-- ANCHOR_END: quick_start --> section")
    blocks = re.findall(r"```(\w+)[^\n]*\n(.*?)```", match.group(1), re.S)
    kinds = [kind for kind, _ in blocks]
    if kinds != ["sh", "toml", "rust", "sh"]:
        sys.exit(f"the quick start's blocks are {kinds}, expected sh, toml, rust, sh")
    return blocks


def unpack_packages(work):
    """Each library's .crate from `cargo package`, unpacked; the patch lines for them."""
    patches = []
    for name in LIBRARIES:
        crates = sorted((TARGET / "package").glob(f"{name}-[0-9]*.crate"))
        if len(crates) != 1:
            sys.exit(f"expected one {name} package in {TARGET / 'package'}, found {crates}")
        with tarfile.open(crates[0]) as archive:
            archive.extractall(work / "crates", filter="data")
        folder = work / "crates" / crates[0].name.removesuffix(".crate")
        patches.append(f'{name} = {{ path = "{folder}" }}')
    return "[patch.crates-io]\n" + "\n".join(patches) + "\n"


def commands(block):
    """A shell block's commands, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def run(command, cwd, env):
    print(f"$ {command}", flush=True)
    started = time.monotonic()
    subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, check=True)
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)


class Game:
    """The game's process and its output lines, read as they come."""

    def __init__(self, command, cwd, env):
        print(f"$ {command}   (in the background)", flush=True)
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(ANSI.sub("", line.rstrip("\n")))
        self.lines.put(None)

    def wait_for(self, pattern, seconds):
        """The first line from now on matching `pattern`, within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.fail(f"the game ended before printing /{pattern}/")
            self.seen.append(line)
            if found := re.search(pattern, line):
                print(f"  seen: {line}", flush=True)
                return found
        self.fail(f"no line matching /{pattern}/ within {seconds} s")

    def fail(self, why):
        print("\n".join(self.seen[-40:]), file=sys.stderr)
        self.stop()
        sys.exit(f"own game: {why}")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def main():
    install, dependencies, main_rs, play = quick_start()
    work = pathlib.Path(tempfile.mkdtemp(prefix="hotwasm-own-game-"))
    # No debug info in the game's dependencies: the same build, a third of
    # the disk (13 GB with it) and quicker links.
    env = dict(os.environ, CARGO_TARGET_DIR=str(GAME_TARGET), CARGO_PROFILE_DEV_DEBUG="false")
    hotwasm = TARGET / "debug" / "hotwasm"
    if not hotwasm.is_file():
        sys.exit(f"no {hotwasm}: build it first (cargo build -p hotwasm-cli)")
    env["PATH"] = f"{hotwasm.parent}{os.pathsep}{env['PATH']}"
    (work / ".cargo").mkdir()
    (work / ".cargo" / "config.toml").write_text(unpack_packages(work))
    print(f"a new game in {work}, with the packaged crates", flush=True)

    # 1. The commands, with this repository's hotwasm for `cargo install hotwasm-cli`.
    steps = [line for line in commands(install[1]) if not line.startswith("cargo install")]
    run("\n".join(steps), work, env)
    new_game = re.search(r"cargo new (\S+)", install[1])
    game_dir = work / new_game.group(1)
    build_guests = next(line for line in steps if line.startswith("hotwasm build"))

    # 2. The dependencies, in place of cargo new's empty table.
    manifest = game_dir / "Cargo.toml"
    text = manifest.read_text()
    if not text.rstrip().endswith("[dependencies]"):
        sys.exit(f"cargo new wrote a Cargo.toml that does not end with [dependencies]:\n{text}")
    manifest.write_text(text.rstrip().removesuffix("[dependencies]") + dependencies[1])
    # 3. The game.
    (game_dir / "src" / "main.rs").write_text(main_rs[1])

    run_game = commands(play[1])[0]
    run(run_game.replace("cargo run", "cargo build", 1), game_dir, env)
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        run_game = f"xvfb-run -a {run_game}"
    game = Game(["bash", "-c", f"exec {run_game}"], game_dir, env)
    try:
        game.wait_for(r"spin started: generation 1, 0 frames so far", FIRST_START)
        game.wait_for(r"first frame", 60)
        game.wait_for(r"answered hello", 60)

        # 4. An edit, rebuilt with hotwasm build: the running game swaps it in, state kept.
        script = game_dir / "guests" / "spin" / "src" / "lib.rs"
        source = script.read_text()
        edited = source.replace('"ping after {} frames"', '"edited: ping after {} frames"')
        if edited == source:
            game.fail("the new guest has no `ping after {} frames` line to edit")
        script.write_text(edited)
        run(build_guests, game_dir, env)
        built = time.monotonic()
        restarted = game.wait_for(r"spin started: generation (\d+), (\d+) frames so far", RELOAD)
        print(f"  running in the game {time.monotonic() - built:.2f} s after the build", flush=True)
        if int(restarted.group(1)) < 2 or int(restarted.group(2)) == 0:
            game.fail(f"the edit started over: {restarted.group(0)}")
        game.wait_for(r"edited: ping after \d+ frames", 60)
    finally:
        game.stop()
    shutil.rmtree(work)
    print("own game: the quick start runs, and an edit swaps in with its state")


if __name__ == "__main__":
    main()
