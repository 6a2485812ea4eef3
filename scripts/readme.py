"""Write README.md from nbs/index.ipynb without Quarto (`nbdev-readme` needs Quarto, which these machines cannot install).

Markdown cells are copied as they are; code cells become fenced Python blocks with the nbdev directives removed.
`python scripts/readme.py --check` exits 1 when README.md differs from what index.ipynb gives."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            src = re.sub(r'^> (.*)$', r'\1', src, count=1, flags=re.M) if src.startswith('# ') else src
            out.append(re.sub(r'\]\((?![a-z]+:|/|#)', '](nbs/', src)) # relative links and images start in nbs/
        elif c['cell_type'] == 'code':
            code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
            if code: out.append(f'```python\n{code}\n```')
    return '\n\n'.join(out).rstrip() + '\n'

if __name__ == '__main__':
    txt = render()
    if '--check' in sys.argv:
        if (root/'README.md').read_text() != txt: sys.exit('README.md differs from nbs/index.ipynb: run python scripts/readme.py')
        print('README.md matches nbs/index.ipynb')
    else: (root/'README.md').write_text(txt); print('wrote README.md')
