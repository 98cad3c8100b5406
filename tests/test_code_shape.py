"""The code-shape rule of the project (issue 17): no function in src/ longer than 80 lines, so every function can
be read top to bottom on one screen. ruff (configured in pyproject.toml) has no rule that counts lines."""

import ast
from pathlib import Path

MAX_LINES = 80
SRC = Path(__file__).resolve().parents[1] / "src"


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_src_is_longer_than_80_lines():
    assert long_functions(SRC) == [], "split these into functions that each read top to bottom"


def test_the_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "module.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == [f"module.py:5 long ({MAX_LINES + 1} lines)"]
