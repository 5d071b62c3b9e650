"""What real MSL forbids, checked on the generated source (no Apple compiler here).

The C++ compile of model.metal against emulator/metal_stdlib accepts everything C++ does;
Metal accepts less. `violations(source)` lists the generated constructs Metal rejects or that
mean something else on an Apple GPU: `double` (none on Apple GPUs) and unsuffixed floating
literals (double in C++, so the emulator would compute in double where the GPU does not),
MSL's reserved type names used as names (`half`, `vertex`, `texture2d`, ...),
recursion (the call graph of the source's functions has a cycle), pointers to pointers in
kernel arguments, pointers without an address space in a signature, exceptions, dynamic
memory, RTTI, `goto`, other headers than <metal_stdlib> (and <metal_simdgroup_matrix>), a
SIMD-group matrix's per-lane elements or transposed loads (outside the emulator's model), and buffer or threadgroup slots
used twice or past the argument table. MetalProgram.render refuses a source with any.
"""

from __future__ import annotations

import re

MAX_BUFFER_SLOTS = 31
_WORDS = re.compile(r"\b(double|try|catch|throw|new|delete|virtual|goto|typeid|dynamic_cast|malloc|free|printf)\b")
# MSL's own type and stage names: C++ lets them name variables, Metal does not
_RESERVED = re.compile(r"\b(half[234]?|bfloat[234]?|vertex|fragment|sampler|texture\w*|patch|visible|ray_data|"
                       r"object_data|imageblock)\b")
_FLOAT_LIT = re.compile(r"(?<![\w.])(\d+\.\d*|\.\d+|\d+[eE][-+]?\d+|\d+\.\d*[eE][-+]?\d+)(?![\w.])")
_FUNC = re.compile(r"^(?:PK_FN|static inline|inline|kernel)\s+[\w\s]*?\b(\w+)\s*\(", re.MULTILINE)


def strip(source: str) -> str:
    """Comments and string literals removed (kept as spaces, so positions stay)."""
    out = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group()), source, flags=re.DOTALL)
    out = re.sub(r"//[^\n]*", "", out)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', out)


def _functions(code: str) -> dict[str, tuple[str, str]]:
    """name → (signature text, body text) of every function defined at top level."""
    out = {}
    for m in _FUNC.finditer(code):
        name = m.group(1)
        open_paren = m.end() - 1
        depth, i = 0, open_paren
        while i < len(code):
            depth += code[i] == "("
            depth -= code[i] == ")"
            if depth == 0:
                break
            i += 1
        sig = code[open_paren + 1:i]
        j = code.find("{", i)
        if j < 0 or code[i + 1:j].strip():
            continue  # a declaration or a macro, not a definition
        depth, k = 0, j
        while k < len(code):
            depth += code[k] == "{"
            depth -= code[k] == "}"
            if depth == 0:
                break
            k += 1
        out[name] = (sig, code[j + 1:k])
    return out


def _split_params(sig: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in sig:
        depth += ch in "([" 
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur.strip()] if p]


def violations(source: str) -> list[str]:
    code = strip(source)
    # object-like macros that name an address space (PK_LOCAL → threadgroup) read as it
    for name, value in re.findall(r"^#define\s+(\w+)\s+(device|constant|threadgroup|thread)\s*$", code, re.MULTILINE):
        code = re.sub(rf"(?<!define )\b{name}\b", value, code)
    line = lambda pos: code.count("\n", 0, pos) + 1
    out = []
    for m in _WORDS.finditer(code):
        out.append(f"line {line(m.start())}: `{m.group()}` is not allowed in Metal kernels")
    for m in _RESERVED.finditer(code):
        out.append(f"line {line(m.start())}: `{m.group()}` is reserved in MSL")
    for m in _FLOAT_LIT.finditer(code):
        if not code[m.end():m.end() + 1] in ("f", "F"):
            out.append(f"line {line(m.start())}: floating literal {m.group()} has no f suffix (a double)")
    for m in re.finditer(r"#\s*include\s*[<\"]([^>\"]+)[>\"]", source):
        if m.group(1) not in ("metal_stdlib", "metal_simdgroup_matrix"):
            out.append(f"line {line(m.start())}: #include <{m.group(1)}>: only <metal_stdlib> is available")
    for m in re.finditer(r"\bthread_elements\b|\bsimdgroup_(?:load|store)\s*\([^;]*,\s*true\s*\)", code):
        out.append(f"line {line(m.start())}: `{m.group()[:40]}`: a SIMD-group matrix's lane layout or a transposed "
                   "load is outside what the emulator models")
    fns = _functions(code)
    graph = {name: {c for c in re.findall(r"\b(\w+)\s*\(", body) if c in fns} for name, (_, body) in fns.items()}
    for name in fns:  # a cycle through `name`: reachable from one of its callees
        seen, todo = set(), list(graph[name])
        while todo:
            n = todo.pop()
            if n == name:
                out.append(f"function {name}: recursion (Metal has no call stack for it)")
                break
            if n not in seen:
                seen.add(n)
                todo += graph[n]
    for name, (sig, _) in fns.items():
        kernel = re.search(rf"\bkernel\s+void\s+{name}\s*\(", code) is not None
        slots = {"buffer": [], "threadgroup": []}
        for p in _split_params(sig):
            if "**" in p.replace(" ", ""):
                out.append(f"function {name}: parameter `{p}` is a pointer to a pointer")
            if "*" in p and not re.match(r"(const\s+)?(device|constant|threadgroup|thread)\b", p):
                out.append(f"function {name}: pointer parameter `{p}` has no address space")
            if kernel:
                a = re.search(r"\[\[\s*(\w+)(?:\s*\(\s*(\d+)\s*\))?\s*\]\]", p)
                if not a:
                    out.append(f"kernel {name}: parameter `{p}` has no [[...]] binding")
                    continue
                kind = {"PK_THREADGROUP_SLOT": "threadgroup"}.get(a.group(1), a.group(1))
                if kind in slots:
                    slots[kind].append(int(a.group(2)))
        for kind, used in slots.items():
            if len(set(used)) != len(used):
                out.append(f"kernel {name}: {kind} slot used twice")
            if kind == "buffer" and used and max(used) >= MAX_BUFFER_SLOTS:
                out.append(f"kernel {name}: buffer slot {max(used)} past Metal's {MAX_BUFFER_SLOTS}")
    return out
