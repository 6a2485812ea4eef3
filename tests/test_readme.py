"README.md says what nbs/index.ipynb says (nbdev-readme needs Quarto, so scripts/readme.py renders it)."
import subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def test_readme_matches_index():
    r = subprocess.run([sys.executable, str(root/'scripts'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_readme_has_two_commands_and_ci_calls_the_test_command():
    txt = (root/'README.md').read_text()
    assert 'bash scripts/experiment.sh' in txt and 'bash scripts/test.sh' in txt
    assert 'bash scripts/test.sh' in (root/'.ci'/'run').read_text()
