"The library's style rules (issue 31): no function in era_s10/ longer than 40 lines, no line longer than 120 characters."
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent/'era_s10'
MAX_FUNC, MAX_LINE = 40, 120
# The few exceptions, as 'module.function' (nested: 'module.outer.inner') or 'module:LINE_NUMBER': why each is allowed
LONG_OK = {}


def modules():
    "The library's modules, without the two files nbdev writes whole: its index, and the package docstring it assembles"
    return sorted(p for p in LIB.glob('*.py') if p.name not in ('_modidx.py', '__init__.py'))


def functions(tree, prefix):
    "(qualified name, lines) of every def in `tree`, nested ones and methods included"
    def walk(node, names):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = names + [child.name]
                if not isinstance(child, ast.ClassDef): yield '.'.join(qual), child.end_lineno - child.lineno + 1
                yield from walk(child, qual)
            else: yield from walk(child, names)
    yield from walk(tree, [prefix])


def long_functions():
    return [(name, n) for p in modules() for name, n in functions(ast.parse(p.read_text()), p.stem)
            if n > MAX_FUNC and name not in LONG_OK]


def lines_over(text, stem):
    "('module:LINE', length) of each line of `text` over `MAX_LINE`, except nbdev's generated `__all__`"
    return [(f'{stem}:{i}', len(l)) for i, l in enumerate(text.splitlines(), 1)
            if len(l) > MAX_LINE and not l.startswith('__all__')]


def long_lines(): return [(k, n) for p in modules() for k, n in lines_over(p.read_text(), p.stem) if k not in LONG_OK]


def test_functions_at_most_40_lines():
    bad = long_functions()
    assert not bad, f'{len(bad)} functions over {MAX_FUNC} lines: ' + ', '.join(f'{n} ({k})' for n, k in bad)


def test_lines_at_most_120_chars():
    bad = long_lines()
    assert not bad, f'{len(bad)} lines over {MAX_LINE} characters: ' + ', '.join(f'{n} ({k})' for n, k in bad)


def test_the_checks_see_long_code():
    "The checks count a long nested def and a long line, and skip nbdev's `__all__`"
    src = 'def f():\n    def g():\n' + '        x = 1\n'*45 + '    return g\n'
    got = dict(functions(ast.parse(src), 'm'))
    assert got == {'m.f': 48, 'm.f.g': 46}
    assert lines_over('x = 1\n' + 'y'*121 + '\n__all__ = [' + "'a', "*40 + ']\n', 'm') == [('m:2', 121)]
