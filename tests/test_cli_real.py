"""The command line end to end on the real CIFAR-10 images (ERA_S10_DATA): one training run shared by the tests of its
run folder, `evaluate`, `predict`, flip TTA and the ONNX export. They stay in this one file: the slow tier's
`pytest -n 2 --dist loadfile` runs a file on one worker, which trains the shared run once."""
import csv, json, tarfile
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


def test_onnx_export_real_images(real_run, real_data, cli, onnx_parity):
    "The parity on 256 real CIFAR-10 images with the real run's weights"
    from era_s10.data import cifar10_arrays
    r = cli('export', real_run['dir'], '--onnx')
    assert r.returncode == 0, r.stderr
    onnx_parity(real_run['dir'], cifar10_arrays(real_data)['train'][0][:256])
