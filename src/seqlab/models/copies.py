"""Check the code copied between seqlab's standalone model files, as transformers' ``utils/check_copies.py`` does.

Each family's ``configuration_*.py`` and ``modeling_*.py`` travel next to saved weights and load with
``trust_remote_code=True`` where seqlab is not installed, so they cannot import one another: shared code is
written out again in each. A copy says where it comes from with a comment on the line just above its ``def`` or
``class`` (above its decorators, if any), for example::

    # Copied from seqlab.models.recurrent.modeling_recurrent.pool_hidden_states
    # Copied from seqlab.models.decoder.modeling_decoder.DecoderMLP with Decoder->Encoder

The optional ``with A->B, C->D`` replacements are plain string replacements applied, in order, to the original's
text. ``check_copies`` finds every mark under the package folder, reads the original by its dotted path (module
file, then qualified name inside it, with ``ast``: nothing is imported) and reports each copy that no longer
matches, each path that names nothing, each copy of a copy and each mark that stands above no def or class. The
marks themselves are left out of the comparison, and so is the indentation of the whole block.

No model file imports this module. ``python -m seqlab.models.copies`` prints the problems (exit status 1 if any).
"""

import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "seqlab.models"
PACKAGE_DIR = Path(__file__).resolve().parent
FIX = "make the copy match the original or update the marker"

_MARK = re.compile(r"^#\s*Copied from\b\s*(?P<target>\S*)\s*(?P<replacements>.*?)\s*$")


@dataclass(frozen=True)
class Mark:
    """One ``Copied from`` comment and the object it stands above."""

    file: Path  # the copy's file
    line: int  # 1-based line of the comment
    module: str  # dotted module of the copy's file, e.g. seqlab.models.decoder.modeling_decoder
    qualname: str | None  # the marked object's name in its file (e.g. DecoderModel._embed); None: no def/class below
    original: str  # dotted path the comment names
    replacements: str  # what follows the path: "" or "with A->B, C->D"

    @property
    def copy(self) -> str:
        """Dotted path of the marked object, e.g. ``seqlab.models.decoder.modeling_decoder.pool_hidden_states``."""
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    name: str  # the marked object's qualified name in its file (or "?" when the mark stands above nothing)
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.name}: {self.message}"


def _comment_lines(source: str) -> dict[int, str]:
    """Line number -> comment, for the lines that hold nothing but a comment (so no string's text counts)."""
    comments = {}
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and lines[token.start[0] - 1].strip() == token.string.strip():
            comments[token.start[0]] = token.string.strip()
    return comments


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Qualified name -> node of every function and class at module level or (recursively) inside a class."""
    found = {}

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[prefix + node.name] = node
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def _first_line(node: ast.AST) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _block(lines: list[str], node: ast.AST) -> list[tuple[int, str]]:
    """(line number, text) of the node's lines, decorators included, plus any more-indented comment lines right
    after it (which the syntax tree leaves out), without trailing blank lines, the block's indentation removed."""
    start, end = _first_line(node), node.end_lineno
    indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent and lines[end].lstrip()[0] == "#"
    ):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    prefix = lines[node.lineno - 1][:indent]
    return [
        (number, line[indent:] if line.startswith(prefix) else line.lstrip())
        for number, line in enumerate(lines[start - 1 : end], start=start)
    ]


def _parse_replacements(text: str) -> tuple[tuple[str, str], ...] | None:
    """``with A->B, C->D`` as ((A, B), (C, D)); () for no text; None when it cannot be read."""
    if not text:
        return ()
    if not text.startswith("with "):
        return None
    pairs = []
    for item in text[len("with ") :].split(","):
        if item.count("->") != 1 or not item.split("->")[0].strip():
            return None
        old, new = (part.strip() for part in item.split("->"))
        pairs.append((old, new))
    return tuple(pairs)


class _File:
    """A parsed model file: its lines, definitions and marks (by the line of the object they stand above)."""

    def __init__(self, path: Path):
        self.path = path
        self.source = path.read_text(encoding="utf-8")
        self.lines = self.source.splitlines()
        self.definitions = _definitions(ast.parse(self.source, filename=str(path)))
        self.comments = _comment_lines(self.source)
        by_first_line = {_first_line(node): name for name, node in self.definitions.items()}
        # mark line -> (match, qualified name of the object just below, or None)
        self.marks = {
            line: (match, by_first_line.get(line + 1))
            for line, comment in self.comments.items()
            if (match := _MARK.match(comment))
        }

    def marked_names(self) -> set[str]:
        return {name for _, name in self.marks.values() if name is not None}

    def is_copy(self, qualname: str) -> bool:
        """Whether the object, or a class around it, is itself marked as a copy."""
        parts = qualname.split(".")
        return any(".".join(parts[:i]) in self.marked_names() for i in range(1, len(parts) + 1))


def _dotted_module(root: Path, path: Path, package: str) -> str:
    return ".".join([package, *path.relative_to(root).with_suffix("").parts])


def _resolve(root: Path, package: str, dotted: str, files: dict) -> tuple["_File | None", str | None, str]:
    """(file, qualified name) of a dotted path, or a reason why it names nothing."""
    if not dotted.startswith(package + "."):
        return None, None, f"the original must be under `{package}`"
    parts = dotted[len(package) + 1 :].split(".")
    for split in range(len(parts) - 1, 0, -1):
        path = root.joinpath(*parts[:split]).with_suffix(".py")
        if path.is_file():
            if path not in files:
                files[path] = _File(path)
            qualname = ".".join(parts[split:])
            if qualname not in files[path].definitions:
                return None, None, f"`{qualname}` is not defined in {path}"
            return files[path], qualname, ""
    return None, None, f"no module file for `{dotted}` under {root}"


def _first_difference(expected: list[str], found: list[tuple[int, str]]) -> str:
    for a, (number, b) in zip(expected, found, strict=False):
        if a != b:
            return f"line {number} is {b!r} where the original gives {a!r}"
    if len(expected) > len(found):
        return f"the copy ends at line {found[-1][0]} where the original goes on with {expected[len(found)]!r}"
    number, extra = found[len(expected)]
    return f"the copy goes on after the original's {len(expected)} lines, at line {number} with {extra!r}"


def _unmarked(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(number, line) for number, line in block if not _MARK.match(line.strip())]


def find_marks(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> list[Mark]:
    """Every ``Copied from`` mark in the ``*.py`` files under ``root`` (the folder of the package ``package``)."""
    marks = []
    for path in sorted(Path(root).rglob("*.py")):
        module = _dotted_module(Path(root), path, package)
        for line, (match, name) in sorted(_File(path).marks.items()):
            marks.append(Mark(path, line, module, name, match["target"], match["replacements"]))
    return marks


def _check_mark(mark: Mark, root: Path, package: str, files: dict) -> str | None:
    """What is wrong with one mark and its copy, or None."""
    if mark.qualname is None:
        return "the mark must stand on the line just above a def or class (above its decorators, if any)"
    replacements = _parse_replacements(mark.replacements)
    if replacements is None:
        return f"cannot read {mark.replacements!r} after the path (write `with A->B, C->D`)"
    if not mark.original:
        return "the mark names no original"
    original_file, qualname, why = _resolve(root, package, mark.original, files)
    if original_file is None:
        return f"the original is not found ({why})"
    if original_file.path == mark.file and qualname == mark.qualname:
        return "the mark names the object it stands above"
    if original_file.is_copy(qualname):
        return "the original is itself a marked copy; point to the code it was copied from"
    expected = "\n".join(
        line for _, line in _unmarked(_block(original_file.lines, original_file.definitions[qualname]))
    )
    for old, new in replacements:
        expected = expected.replace(old, new)
    expected_lines = expected.split("\n")
    copy_file = files[mark.file]
    found = _unmarked(_block(copy_file.lines, copy_file.definitions[mark.qualname]))
    if expected_lines != [line for _, line in found]:
        return f"the copy differs from the original ({_first_difference(expected_lines, found)})"
    return None


def check_copies(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> list[Problem]:
    """Every marked copy under ``root`` that does not match its original, and every mark that is wrong in itself."""
    root = Path(root)
    files: dict[Path, _File] = {path: _File(path) for path in sorted(root.rglob("*.py"))}
    problems = []
    for mark in find_marks(root, package):
        message = _check_mark(mark, root, package, files)
        if message is not None:
            problems.append(
                Problem(mark.file, mark.line, mark.qualname or "?", f"`Copied from {mark.original}`: {message}: {FIX}.")
            )
    return problems


def main() -> int:
    problems = check_copies()
    for problem in problems:
        print(problem)
    marks = find_marks()
    print(f"{len(marks)} copies marked, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
