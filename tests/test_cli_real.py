"""The command line end to end on the real CIFAR-10 images (ERA_S10_DATA): one training run shared by the tests of its
run folder, `evaluate`, `predict` and flip TTA; and `--seeds`."""
import csv, json, os, tarfile
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from fastai.callback.schedule import SchedCos
from era_s10.data import CIFAR10_CLASSES
from era_s10.model import CustomResNet

PNGS = ['samples.png', 'augmented.png', 'lr_find.png', 'schedule.png', 'learning_curves.png', 'misclassified.png', 'confusion_matrix.png']


def read_csv(f):
    with open(f) as fh: return list(csv.DictReader(fh))


def test_run_summary(real_run):
    s = real_run['summary']
    st = s['settings']
    assert (st['epochs'], st['bs'], st['seed'], st['subset'], st['wd'], st['label_smoothing']) == (3, 128, 42, 2500, 0.5, 0.2)
    assert 0 < st['lr_min'] < st['lr_max'] and s['lr_source'].startswith('lr_find (40 iterations)')
    assert (s['n_train'], s['n_valid'], s['valid_split']) == (2250, 250, 'holdout')
    for k in ('valid_loss', 'valid_accuracy', 'valid_accuracy_tta', 'seconds', 'train_images_per_s'): assert s[k] > 0, k
    assert s['valid_accuracy'] > 0.2, s['valid_accuracy'] # well above chance (0.1) after 3 epochs on 2250 images
    assert s['device'] and {'python', 'torch', 'fastai', 'era_s10'} <= set(s['versions'])
    pc = s['per_class_accuracy']
    assert list(pc) == list(CIFAR10_CLASSES) and all(0 <= v <= 1 for v in pc.values())
    assert 'Traceback' not in real_run['proc'].stderr
    assert f"run folder: {real_run['dir']}" in real_run['proc'].stdout


def test_run_files(real_run):
    rd = real_run['dir']
    m = read_csv(rd/'metrics.csv')
    assert [r['epoch'] for r in m] == ['0', '1', '2']
    for r in m:
        for k in ('train_loss', 'valid_loss', 'accuracy', 'seconds'): assert float(r[k]) > 0, (k, r)
    model = CustomResNet()
    model.load_state_dict(torch.load(rd/'model.pth', weights_only=True))
    assert (rd/'export.pkl').stat().st_size < 30e6 # the model and the transforms, not the 5,000 images
    for f in PNGS:
        with Image.open(rd/f) as im: assert im.format == 'PNG' and min(im.size) > 100, f


def test_run_schedule(real_run):
    st = real_run['summary']['settings']
    rows = read_csv(real_run['dir']/'schedule.csv')
    n = len(rows)
    assert n == 3*(2250//128) and [int(r['iteration']) for r in rows] == list(range(n))
    lrs = np.array([float(r['lr']) for r in rows])
    assert lrs[0] == pytest.approx(st['lr_min'], rel=1e-6)
    assert lrs.max() == pytest.approx(st['lr_max'], rel=1e-3)
    assert abs(int(lrs.argmax()) - 5/24*n) <= 1
    # the last batch runs at (n-1)/n of the cycle: fastai's cosine from LRMAX down to LRMIN, just short of LRMIN
    f = ((n-1)/n - 5/24)/(1 - 5/24)
    assert lrs[-1] == pytest.approx(SchedCos(st['lr_max'], st['lr_min'])(f), rel=1e-4)
    assert st['lr_min'] <= lrs[-1] < 1.05*st['lr_min']
    assert (lrs >= st['lr_min']*(1-1e-6)).all() # no annihilation below LRMIN
    moms = np.array([float(r['mom']) for r in rows])
    assert moms[0] == pytest.approx(0.95) and moms.min() == pytest.approx(0.85, abs=1e-3) and int(moms.argmin()) == int(lrs.argmax())


def test_evaluate_tta(real_run, cli):
    r = cli('evaluate', real_run['dir'], '--tta')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    s = real_run['summary']
    assert (res['split'], res['n']) == ('holdout', 250)
    assert res['accuracy'] == pytest.approx(s['valid_accuracy'], abs=1e-6)
    assert res['accuracy_tta'] == pytest.approx(s['valid_accuracy_tta'], abs=1e-6)
    assert res['loss'] == pytest.approx(s['valid_loss'], rel=1e-4)


def test_predict(real_run, real_data, cli, tmp_path):
    files = []
    if real_data.is_dir(): files = sorted((real_data).rglob('*.jpg'))[:2]
    else:
        with tarfile.open(real_data) as tf:
            for m in tf:
                if m.isfile() and m.name.endswith('.jpg'):
                    f = tmp_path/f'img{len(files)}.jpg'; f.write_bytes(tf.extractfile(m).read()); files.append(f)
                    if len(files) == 2: break
    r = cli('predict', real_run['dir'], *files)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    for f, l in zip(files, lines):
        name, cls, p = l.split('\t')
        assert name == str(f) and cls in CIFAR10_CLASSES and 0.1 <= float(p) <= 1, l


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
    lrs = [float(r['lr']) for r in read_csv(out/'schedule.csv')]
    assert lrs[0] == pytest.approx(st['lr_min']) and max(lrs) <= st['lr_max']*(1+1e-6) and min(lrs) >= st['lr_min']*(1-1e-6)
    assert 0 <= s['valid_accuracy'] <= 1 and json.loads((out/'config.json').read_text())['recipe'] == 'seed' # a resume keeps it
