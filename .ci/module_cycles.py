#!/usr/bin/env python3
"""Checks that the modules of smtp-proto import each other without a cycle
(issue 12: input validation sits in a leaf module, `Error` on top of what it
carries, and no module both uses `Error` and is carried by it).

A module is a file of smtp-proto/src: `address.rs` is `address`,
`auth/mod.rs` is `auth`, `auth/login.rs` is its child `auth::login`. An edge
A -> B is a path in A's code that names module B: `use crate::b::...`,
`crate::b::f(...)`, `super::...`, `self::...`, or an item the crate root
re-exports (`crate::Error` is `crate::error::Error`, as lib.rs says). A
parent depends on each child it declares (`mod login;`). A child naming an
ancestor is not an edge (a child is part of its parent), so a parent/child
pair is a cycle only through some other module (auth::login -> error ->
auth, say). Comments, string literals, `#[cfg(test)]` items and tests.rs
files are not read: tests may import anything.

Prints every strongly connected component of more than one module, with the
edges inside it and the names each edge imports, and exits 1 if there is
one. Python 3 standard library only."""
import os
import re
import sys

# The source folder to check; another one may be given (to try the checker).
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smtp-proto", "src")
if len(sys.argv) > 1:
    ROOT = sys.argv[1]


def strip(text):
    """The code without comments, string and char literals (which may
    contain `crate::` or braces)."""
    out, i, n = [], 0, len(text)
    char_lit = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]*\}|.)|[^\\'\n])'")
    raw_str = re.compile(r'b?r(#*)"')
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and raw_str.match(text, i):
            m = raw_str.match(text, i)
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            i = n if end < 0 else end + len(close)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and char_lit.match(text, i):
            i = char_lit.match(text, i).end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")


def drop_test_items(code):
    """`code` without each item under `#[cfg(test)]`: up to its `;`, or
    through its balanced `{ ... }` block."""
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code
        i, depth = m.end(), 0
        while i < len(code):
            if code[i] == ";" and depth == 0:
                i += 1
                break
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            i += 1
        code = code[: m.start()] + code[i:]


TOKEN = re.compile(r"\w+|::|[{},*]")


def use_paths(tree):
    """Expands a use tree (`crate::{a::B, c::{self, D as E}}`) into paths,
    each a list of segments ending with the name it binds."""
    tokens = TOKEN.findall(tree)
    paths = []

    def walk(i, prefix):
        segs = list(prefix)
        while i < len(tokens):
            tok = tokens[i]
            if tok == "{":
                i += 1
                while tokens[i] != "}":
                    i = walk(i, segs)
                    if tokens[i] == ",":
                        i += 1
                return i + 1
            if tok == "*":
                paths.append(segs + ["*"])
                return i + 1
            if tok in (",", "}"):
                break
            if tok == "as":
                i += 2
                break
            if tok != "self":
                segs.append(tok)
            i += 1
            if i < len(tokens) and tokens[i] == "::":
                i += 1
                continue
            break
        paths.append(segs)
        return i

    if tokens and tokens[0] == "::":
        return []
    walk(0, [])
    return paths


USE = re.compile(r"\b(pub(?:\([\w\s:]+\))?\s+)?use\s+([^;]+);")
PATH = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)")
MOD_DECL = re.compile(r"\bmod\s+(\w+)\s*;")


def module_name(rel):
    parts = rel[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def main():
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(dirpath, name)
                files[module_name(os.path.relpath(path, ROOT))] = path
    modules = set(files)
    code = {}
    for mod, path in files.items():
        with open(path, encoding="utf-8") as f:
            code[mod] = drop_test_items(strip(f.read()))

    # What the crate root re-exports: `pub use error::{Error, InputField};`.
    root_exports = {}
    for m in USE.finditer(code[()]):
        if m.group(1):
            for segs in use_paths(m.group(2)):
                if segs and segs[-1] != "*":
                    alias = re.search(r"\bas\s+(\w+)\s*$", m.group(2))
                    name = alias.group(1) if alias and len(use_paths(m.group(2))) == 1 else segs[-1]
                    root_exports[name] = segs[1:] if segs[0] == "crate" else segs

    def resolve(mod, segs, depth=0):
        """The module a path written in `mod` names, or None (another crate,
        a name in scope, or the crate root itself)."""
        if segs[0] == "crate":
            cur, rest = (), segs[1:]
        elif segs[0] in ("super", "self"):
            cur, rest = mod, segs
            while rest and rest[0] in ("super", "self"):
                cur, rest = (cur[:-1] if rest[0] == "super" else cur), rest[1:]
        elif mod + (segs[0],) in modules:
            cur, rest = mod, segs
        else:
            return None
        while rest and cur + (rest[0],) in modules:
            cur, rest = cur + (rest[0],), rest[1:]
        if cur == ():
            if rest and rest[0] in root_exports and depth < 8:
                return resolve((), ["crate"] + root_exports[rest[0]] + rest[1:], depth + 1)
            return None
        return cur

    edges = {mod: {} for mod in modules if mod != ()}
    for mod in edges:
        text = code[mod]
        found = []
        for m in USE.finditer(text):
            found.extend(use_paths(m.group(2)))
        text = USE.sub(" ", text)
        found.extend(m.group(1).split("::") for m in PATH.finditer(text))
        found.extend([child, "mod"] for child in MOD_DECL.findall(text))
        for segs in found:
            target = resolve(mod, segs)
            # A child naming an ancestor, or a module naming itself, is no edge.
            if target is None or mod[: len(target)] == target:
                continue
            edges[mod].setdefault(target, set()).add(segs[-1])

    # Tarjan's strongly connected components.
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(sorted(scc))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            connect(v)

    def name(mod):
        return "::".join(mod)

    cycles = [scc for scc in sccs if len(scc) > 1]
    for scc in sorted(cycles):
        print(f"cycle among {len(scc)} modules: {', '.join(map(name, scc))}")
        for v in scc:
            for w in sorted(edges[v]):
                if w in scc:
                    print(f"  {name(v)} -> {name(w)}: {', '.join(sorted(edges[v][w]))}")
    if cycles:
        return 1
    print(f"no module cycle among the {len(edges)} modules of smtp-proto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
