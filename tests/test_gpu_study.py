"""`scripts/gpu_study.sh`, the accuracy study's one GPU call, rehearsed on the CPU on tiny data: the timed parts, every
variant, the combination, and a second call that finishes from the first one's `study.tgz` without training again."""
import csv, os, subprocess, sys, tarfile
from pathlib import Path
import pytest

pytest.importorskip('optuna')
ROOT = Path(__file__).parents[1]
VARIANTS = ('defaults', 'recipe=seed', 'lr_div=100', 'lr_find_reps=3', 'ema_decay=0.99', 'temperature=8',
            'bn_momentum=0.4', 'tta=flip-shift1')
COMBO = 'lr_div=100,ema_decay=0.99' # named, since on tiny data no variant wins


def study(data, out, d, **env):
    "Run the script as a GPU call would, at one epoch on the CPU, with one seed for the ablation and one new seed"
    env = {**os.environ, 'PATH': f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", 'STUDY_DIR': str(d),
           'TRAIN_ARGS': '--epochs 1 --subset 32 --bs 16 --lr-find-its 10 --no-plots --device cpu',
           'PHASES': '1:2 2:2', 'SEEDS': '0', 'NEW_SEEDS': '5', 'WORKERS': '2', 'COMBINE': COMBO, **env}
    return subprocess.run(['bash', str(ROOT/'scripts'/'gpu_study.sh'), str(data), str(out)], capture_output=True,
                          text=True, env=env, timeout=1800)


def test_study_rehearsal(tiny_data, tmp_path):
    out = tmp_path/'out'
    r = study(tiny_data, out, tmp_path/'d')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ['ablation.md', 'combined.md', 'study.tgz', 'workers.tsv',
                                                     'workers.txt']
    timed = list(csv.DictReader(open(out/'workers.tsv'), delimiter='\t'))
    assert [(t['workers'], t['trials']) for t in timed] == [('1', '2'), ('2', '2')]
    assert '1.00x one worker' in (out/'workers.txt').read_text()
    md = (out/'ablation.md').read_text()
    assert all(f'| {v} | 1 |' in md for v in VARIANTS), md
    assert f'| {COMBO} | 1 |' in (out/'combined.md').read_text()
    with tarfile.open(out/'study.tgz') as t: names = t.getnames()
    assert './ablation/results.csv' in names and not any(n.endswith(('.pth', '.pkl')) for n in names)
    # a second call, as on a fresh machine, from the first call's study.tgz: nothing is left to train
    again = study(tiny_data, tmp_path/'out2', tmp_path/'d2', STUDY_TGZ=str(out/'study.tgz'))
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert not list((tmp_path/'d2').glob('*/trials/*/model.pth'))
    assert (tmp_path/'out2'/'workers.tsv').read_text() == (out/'workers.tsv').read_text()
