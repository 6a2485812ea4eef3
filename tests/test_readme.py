"README.md says what nbs/index.ipynb says (nbdev-readme needs Quarto, so scripts/readme.py renders it), in the shape issue 31 asks."
import re, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def test_readme_matches_index():
    r = subprocess.run([sys.executable, str(root/'scripts'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_readme_has_two_commands_and_ci_calls_the_test_command():
    txt = (root/'README.md').read_text()
    assert 'bash scripts/experiment.sh' in txt and 'bash scripts/test.sh' in txt
    ci = (root/'.ci'/'run').read_text()
    assert 'bash scripts/test.sh\n' in ci and 'bash scripts/test.sh --slow' in ci

def commit_hashes(txt:str)->set:
    "The words of 7 to 40 hex digits with a digit among them, as git abbreviates commits (not words like 'defaced')"
    return {w for w in re.findall(r'\b[0-9a-f]{7,40}\b', txt) if re.search(r'\d', w)}

def test_readme_is_short():
    lines = (root/'README.md').read_text().splitlines()
    assert len(lines) <= 160, len(lines)
    first = '\n'.join(lines[:40])
    assert 'bash scripts/experiment.sh' in first and 'bash scripts/test.sh' in first, 'the two commands come in the first 40 lines'
    hashes = commit_hashes('\n'.join(lines))
    assert len(hashes) <= 5, sorted(hashes)
    assert commit_hashes('at 7751063, 6,573,120 parameters, deadbee, 0e33ce1') == {'7751063', '0e33ce1'}

def test_readme_links_exist():
    "Every relative link of the README names a file of the repository"
    for link in re.findall(r'\]\(([^)]+)\)', (root/'README.md').read_text()):
        if not re.match(r'[a-z]+:|#', link): assert (root/link).exists(), link
