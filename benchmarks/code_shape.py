"""The shape of the source: functions longer than --max-function lines and modules longer than
--max-module lines (issue 18's limits: 60 and 400), longest first.

    python benchmarks/code_shape.py [--root src] [--max-function 60] [--max-module 400]
"""

import argparse
import ast
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="src")
    parser.add_argument("--max-function", type=int, default=60)
    parser.add_argument("--max-module", type=int, default=400)
    args = parser.parse_args()
    functions, modules = [], []
    for path in sorted(Path(args.root).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        modules.append((text.count("\n"), str(path)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                functions.append((n, f"{path}:{node.lineno} {node.name}"))
    long_functions = sorted((f for f in functions if f[0] > args.max_function), reverse=True)
    long_modules = sorted((m for m in modules if m[0] > args.max_module), reverse=True)
    print(f"{len(functions)} functions, {len(modules)} modules under {args.root}")
    print(f"functions over {args.max_function} lines: {len(long_functions)}")
    for n, where in long_functions:
        print(f"  {n:4d}  {where}")
    print(f"modules over {args.max_module} lines: {len(long_modules)}")
    for n, where in long_modules:
        print(f"  {n:4d}  {where}")


if __name__ == "__main__":
    main()
