#!/usr/bin/env python3
"""Checks that each workspace crate's declared `rust-version` is true of the
lockfile with every feature on: no crate it depends on (normal and build
dependencies, as resolved in Cargo.lock) declares a newer `rust-version`.
Exits 1 and names the offenders otherwise.

Cargo.lock pins `idna_adapter` to 1.1 (its unicode-rs backend): the newest
one (ICU4X) needs Rust 1.88, and lettre's address checks (the `lettre`
feature) reach it through `idna`."""
import json
import subprocess
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    failed = False
    for member in metadata["workspace_members"]:
        crate = packages[member]
        declared = crate.get("rust_version")
        if not declared:
            print(f"{crate['name']}: no rust-version declared")
            failed = True
            continue
        seen, stack = set(), [member]
        while stack:
            for dep in nodes[stack.pop()]["deps"]:
                kinds = {k["kind"] for k in dep["dep_kinds"]}
                if kinds & {None, "build"} and dep["pkg"] not in seen:
                    seen.add(dep["pkg"])
                    stack.append(dep["pkg"])
        newer = sorted(
            (packages[i]["rust_version"], packages[i]["name"])
            for i in seen
            if packages[i].get("rust_version")
            and version(packages[i]["rust_version"]) > version(declared)
        )
        status = "ok" if not newer else "FAILS"
        print(f"{crate['name']}: rust-version {declared} {status}")
        for needed, name in newer:
            print(f"    {name} needs {needed}")
        failed |= bool(newer)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
