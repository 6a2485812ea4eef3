"""`era-s10 train --seeds` and `--recipe seed` end to end on the real CIFAR-10 images (ERA_S10_DATA), each in its own
short runs."""
import csv, json, os
from pathlib import Path
import numpy as np, pytest


def check_seeds(out, n_train:int):
    sj = json.loads((out/'seeds.json').read_text())
    assert sj['seeds'] == [0, 1] and len(sj['runs']) == 2 and sj['lr_finder'] == 'per seed'
    summaries = [json.loads((Path(rd)/'summary.json').read_text()) for rd in sj['runs']]
    assert [s['settings']['seed'] for s in summaries] == [0, 1]
    for k in ('valid_accuracy', 'valid_accuracy_tta'):
        v = [s[k] for s in summaries]
        assert sj[k]['values'] == v and sj[k]['mean'] == pytest.approx(np.mean(v)) and sj[k]['std'] == pytest.approx(np.std(v, ddof=1))
    assert all(s['settings']['epochs'] == 2 and s['n_train'] == n_train for s in summaries)
    assert (out/'seeds.png').exists()


def test_seeds(real_data, cli, tmp_path):
    # The LR finder's 100 default iterations are most of the time of these short runs: 10 keeps this test quick.
    # `test_seeds_exact` runs the command as documented. The default --out (runs/run) lands in tmp_path.
    r = cli('train', '--seeds', '0,1', '--data', real_data, '--subset', 1000, '--epochs', 2, '--bs', 128, '--lr-find-its', 10, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"seeds.json written to {tmp_path/'runs'/'run'}" in r.stdout, r.stdout
    check_seeds(tmp_path/'runs'/'run', 900)


@pytest.mark.skipif(not os.environ.get('ERA_S10_SLOW'), reason='about 15 minutes on 2 CPU cores: set ERA_S10_SLOW=1 to run it')
def test_seeds_exact(real_data, cli, tmp_path):
    r = cli('train', '--seeds', '0,1', '--data', real_data, '--subset', 2000, '--epochs', 2, '--bs', 128, cwd=tmp_path, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    check_seeds(tmp_path/'runs'/'run', 1800)


def test_recipe_seed(cli, real_data, tmp_path):
    "`--recipe seed` trains with the original notebook's settings on the real images"
    out = tmp_path/'seed'
    r = cli('train', '--recipe', 'seed', '--data', real_data, '--subset', 1000, '--epochs', 1, '--bs', 128, '--lr-find-its', 10,
            '--no-plots', '--device', 'cpu', '--out', out)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    s = json.loads((out/'summary.json').read_text())
    st = s['settings']
    assert (st['recipe'], st['wd'], st['wd_kind'], st['label_smoothing'], st['anneal']) == ('seed', 1e-4, 'L2 (Adam weight_decay)', 0., 'linear')
    assert st['lr_min'] == pytest.approx(st['lr_max']/100) and s['lr_source'].endswith('LRMIN = LRMAX/100')
    with open(out/'schedule.csv') as fh: lrs = [float(r['lr']) for r in csv.DictReader(fh)]
    assert lrs[0] == pytest.approx(st['lr_min']) and max(lrs) <= st['lr_max']*(1+1e-6) and min(lrs) >= st['lr_min']*(1-1e-6)
    assert 0 <= s['valid_accuracy'] <= 1 and json.loads((out/'config.json').read_text())['recipe'] == 'seed' # a resume keeps it
