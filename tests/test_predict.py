"""Using a trained model: `era-s10 predict` over a folder of 1,000 images against single-image predictions,
`export.pkl` at model size for a Learner over 60,000 images, and `era-s10 export --onnx` against PyTorch in
onnxruntime (on real images in tests/test_cli_real.py)."""
import csv, pickle, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from era_s10.cli import main
from era_s10.data import CIFAR10_CLASSES


@pytest.fixture(scope='module')
def tiny_run(tiny_data, tmp_path_factory):
    "A finished 1-epoch CPU run on the 100 random images of `tiny_data`"
    from era_s10.train import train_run
    out = tmp_path_factory.mktemp('tinyrun')/'run'
    return Path(train_run(tiny_data, out=out, epochs=1, bs=16, lr_min=1e-4, lr_max=1e-3, device='cpu', plots=False, quiet=True)['run_dir'])


def make_images(d, n=1000, seed=0):
    "`n` random images in 10 nested folders, in four formats; every 50th is 48x40 instead of 32x32"
    rng, exts, files = np.random.default_rng(seed), ['.png', '.jpg', '.bmp', '.webp'], []
    for i in range(n):
        f = d/f'part{i % 10}'/('deeper' if i % 3 == 0 else '')/f'{i:04d}{exts[i % 4]}'
        f.parent.mkdir(parents=True, exist_ok=True)
        h, w = (40, 48) if i % 50 == 0 else (32, 32)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(f); files.append(f)
    return files


def test_predict_folder_matches_single_images(tiny_run, cli, tmp_path):
    d = tmp_path/'images'
    files = make_images(d)
    for i in range(3): (d/f'part{i}'/f'broken{i}.png').write_bytes(b'not an image')
    (d/'notes.txt').write_text('not an image, and not an image extension: ignored')
    out = tmp_path/'preds'/'out.csv'
    # fp32: in bf16 a batch and a single image can round a near-tie between two classes differently
    r = cli('predict', tiny_run, d, '--csv', out, '--device', 'cpu', '--bs', 128, '--precision', 'fp32')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'era-s10: warning: 3 unreadable image file(s) in {d}: '), err
    assert r.stdout.startswith('1000 images in ') and 'images/s' in r.stdout, r.stdout
    with open(out) as fh: rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ['path', 'class', 'probability', 'class_2', 'probability_2', 'class_3', 'probability_3']
    assert sorted(r['path'] for r in rows) == sorted(map(str, files))
    from era_s10.train import inference_learner
    learn = inference_learner(tiny_run, device='cpu', precision='fp32')
    for row in rows: # fastai's `predict` on each file alone
        cls, idx, probs = learn.predict(row['path'])
        top = probs.argsort(descending=True)[:3].tolist()
        assert [row['class'], row['class_2'], row['class_3']] == [CIFAR10_CLASSES[i] for i in top], row
        for k, i in zip(('probability', 'probability_2', 'probability_3'), top): assert float(row[k]) == pytest.approx(float(probs[i]), abs=1e-5)
    # the same command again must not overwrite the CSV
    before = out.read_bytes()
    r = cli('predict', tiny_run, d, '--csv', out, '--device', 'cpu')
    assert r.returncode == 2 and r.stderr.strip() == f'era-s10: error: {out} already exists: pass another file name, or remove it first', r.stderr
    assert out.read_bytes() == before


def test_export_pkl_is_model_sized(tmp_path, fastai_home):
    "A Learner over 60,000 images (cifar-10-batches-py) exports at the model's size, and `load_learner` predicts with it"
    from fastai.learner import load_learner
    from fastai.vision.core import PILImage
    from era_s10.data import cifar10_dls
    from era_s10.learner import cifar_learner
    src, rng = tmp_path/'cifar-10-batches-py', np.random.default_rng(0)
    src.mkdir()
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        with open(src/name, 'wb') as fh:
            pickle.dump({'data': rng.integers(0, 256, (10000, 3072), dtype=np.uint8), 'labels': rng.integers(0, 10, 10000).tolist()}, fh)
    dls = cifar10_dls(src, device='cpu')
    assert len(dls.train_ds) + len(dls.valid_ds) == 60000
    learn = cifar_learner(dls, path=tmp_path)
    learn.export(tmp_path/'export.pkl')
    size = (tmp_path/'export.pkl').stat().st_size
    weights = sum(p.numel()*p.element_size() for p in learn.model.state_dict().values())
    print(f'\nexport.pkl {size/1e6:.2f} MB, model weights {weights/1e6:.2f} MB (60,000 images in the DataLoaders)')
    assert size < 30e6 and size < weights + 2**20, (size, weights)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path/'x.png')
    cls, idx, probs = load_learner(tmp_path/'export.pkl').predict(PILImage.create(tmp_path/'x.png'))
    assert cls in CIFAR10_CLASSES and probs.shape == (10,) and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    assert len(dls.train.one_batch()[0]) == 512 # exporting left the Learner's own data in place


def test_onnx_export_random_images(tiny_run, cli, onnx_parity):
    r = cli('export', tiny_run, '--onnx')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    assert (tiny_run/'export.pkl').exists() and (tiny_run/'model.onnx').exists()
    onnx_parity(tiny_run, np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8))


def test_onnx_missing_is_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxscript', None) # `import onnxscript` now raises ImportError
    with pytest.raises(SystemExit) as e: main(['export', str(tiny_run), '--onnx'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err == ["era-s10: error: ONNX export needs the optional package onnxscript: pip install 'era_s10[onnx]'"], err
