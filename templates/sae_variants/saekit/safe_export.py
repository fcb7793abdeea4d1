"""Loading a run's torch.export archive without running anything the run put in it.

torch.export.load is not safe on a file someone else wrote (its own docstring says so): it
unpickles weights and constants marked `use_pickle` with weights_only=False, falls back to a
full unpickle when a safe load of the sample inputs fails, unpickles "opaque" constants with
plain pickle, loads AOTInductor shared libraries found in the archive, parses shape expressions
with sympy (which evaluates them), and resolves a node's target by walking attributes from the
`torch` module, so a target "torch.os.system" would be called when the graph runs. Any of these
would let experiment.py's code run inside the harness's evaluation and write its own scores.

`load_program` therefore reads the archive as data first and refuses, with the reason, anything
a plain export of tensor operations does not contain: only the files torch.export.save writes
for one program, raw tensor payloads (no pickles), sample inputs that a weights-only load
accepts, ATen operators (and getitem) as node targets, except the two that reach outside
tensors (from_file, _print), and shape expressions made of symbols,
integers and sympy's arithmetic. Only then is torch.export.load called, and the loaded graph is
checked again node by node.
"""

from __future__ import annotations

import io
import json
import operator
import re
import zipfile
from pathlib import Path

import torch

# files torch.export.save (torch 2.13) writes for one program named "model", relative to the
# archive's top folder
ALLOWED_FILES = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/sample_inputs/model\.pt"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+)"
)
ATEN_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+")
SAFE_TARGETS = {"_operator.getitem"}
# the ATen operators that touch anything but tensors: reading a file into a tensor, printing
DENIED_ATEN = {"from_file", "_print"}
# shape expressions: sympy classes and assumptions only, nothing a Python eval could abuse
EXPR_CHARS = re.compile(r"[A-Za-z0-9_ +\-*/(),.=']*")
EXPR_NAMES = {
    "Symbol", "Integer", "Rational", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "FloorDiv",
    "CeilToInt", "FloorToInt", "TruncToInt", "PythonMod", "CleanDiv", "IntTrueDiv", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "positive", "integer", "nonnegative", "oo",
}
SYMBOL_NAME = re.compile(r"[su]\d+")


class UnsafeExport(Exception):
    """The archive holds something other than tensors and ATen operations."""


def _strings(node, key: str | None = None):
    """(key, string) for every string in a JSON document, with the key it sits under."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


def _check_expr(expr: str) -> None:
    if "__" in expr or not EXPR_CHARS.fullmatch(expr):
        raise UnsafeExport(f"a shape expression is not plain arithmetic: {expr[:80]!r}")
    quoted = set(re.findall(r"'([^']*)'", expr))
    for name in re.findall(r"[A-Za-z_]\w*", re.sub(r"'[^']*'", "", expr)):
        if name not in EXPR_NAMES:
            raise UnsafeExport(f"a shape expression names {name!r}: {expr[:80]!r}")
    for name in quoted:
        if not SYMBOL_NAME.fullmatch(name):
            raise UnsafeExport(f"a shape expression has the symbol {name!r}")


def check_archive(path: Path) -> None:
    """Raise UnsafeExport unless the archive is data a plain tensor-program export consists of."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UnsafeExport(f"{path.name} is not a torch.export archive ({exc})") from None
    with archive:
        names = archive.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1:
            raise UnsafeExport(f"{path.name} has {len(tops)} top folders; torch.export.save writes one")
        top = tops.pop()
        for name in names:
            rel = name.split("/", 1)[1] if "/" in name else ""
            if not ALLOWED_FILES.fullmatch(rel):
                raise UnsafeExport(f"{path.name} holds {rel or name!r}, which a plain export does not write")

        def read_json(rel: str) -> dict:
            try:
                return json.loads(archive.read(f"{top}/{rel}"))
            except (KeyError, ValueError) as exc:
                raise UnsafeExport(f"{path.name}: {rel} is missing or not JSON ({exc})") from None

        for rel in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
            for fqn, meta in read_json(rel).get("config", {}).items():
                if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
                    raise UnsafeExport(f"{path.name}: {fqn} is stored as a pickled object, not as raw tensor data")
        try:
            torch.load(io.BytesIO(archive.read(f"{top}/data/sample_inputs/model.pt")), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure here would send torch to a full unpickle
            raise UnsafeExport(f"{path.name}: its sample inputs are not plain tensors ({type(exc).__name__})") from None
        for key, value in _strings(read_json("models/model.json")):
            aten = ATEN_TARGET.fullmatch(value) and value.split(".")[3] not in DENIED_ATEN
            if key == "target" and not (aten or value in SAFE_TARGETS):
                raise UnsafeExport(f"{path.name} calls {value!r}; only ATen operators may appear in the graph")
            if key == "expr_str":
                _check_expr(value)


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """torch.export.load, after check_archive, with the loaded graph checked again."""
    path = Path(path)
    check_archive(path)
    program = torch.export.load(str(path))
    for node in program.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        target = node.target
        aten = (isinstance(target, torch._ops.OpOverload) and target.namespace == "aten"
                and target._opname not in DENIED_ATEN)
        if node.op != "call_function" or not (aten or target is operator.getitem):
            raise UnsafeExport(f"{path.name}: node {node.name} is {node.op} {target!r}; only ATen operators may run")
    return program
