"Every data source gives the same arrays; the cache; image modes; safe pickles; a smoke test on the real data"
import os, pickle, tarfile, time, warnings
import numpy as np, pytest, torch
from PIL import Image
import era_s10.sources as S
from era_s10.data import (cifar10_arrays, cifar10_dls, read_image, UserError, UnreadableImagesWarning, CIFAR10_CLASSES)


def write_batches(arrs, folder, protocol=2):
    "Write `arrs` (as from `cifar10_arrays`) as torchvision's cifar-10-batches-py: data_batch_1..5 and test_batch"
    folder.mkdir()
    (x, y), te = arrs['train'], arrs['test']
    for i, idx in enumerate(np.array_split(np.arange(len(y)), 5)):
        with open(folder/f'data_batch_{i+1}', 'wb') as f:
            pickle.dump({'data': x[idx].reshape(len(idx), -1), 'labels': y[idx].tolist(), 'batch_label': f'batch {i+1}'}, f, protocol=protocol)
    if te is not None:
        with open(folder/'test_batch', 'wb') as f:
            pickle.dump({'data': te[0].reshape(len(te[1]), -1), 'labels': te[1].tolist()}, f, protocol=protocol)
    return folder


@pytest.mark.parametrize('ext', ['.tgz', '.tar'])
@pytest.mark.parametrize('protocol', [2, 5])
def test_every_source_same_arrays(folder, tmp_path, fastai_home, ext, protocol):
    src = folder(n_per_class=5, n_test=2)
    arc = tmp_path/f'cifar{ext}'
    with tarfile.open(arc, 'w:gz' if ext == '.tgz' else 'w') as tf: tf.add(src, arcname='cifar10')
    ref = cifar10_arrays(src)
    assert ref['train'][0].shape == (50,3,32,32) and ref['train'][0].dtype == np.uint8
    assert ref['test'][0].shape == (20,3,32,32) and ref['test'][1].dtype == np.int64
    # the first image is the PNG we wrote, pixel for pixel
    np.testing.assert_array_equal(ref['train'][0][0].transpose(1,2,0), np.asarray(Image.open(src/'train'/'airplane'/'0000.png')))
    bp = write_batches(ref, tmp_path/'cifar-10-batches-py', protocol)
    for source in (arc, bp):
        got = cifar10_arrays(source)
        for split in ('train', 'test'):
            np.testing.assert_array_equal(got[split][0], ref[split][0])
            np.testing.assert_array_equal(got[split][1], ref[split][1])
    # the archive was unpacked under FASTAI_HOME, not ~/.fastai
    assert cifar10_arrays(arc)['root'].is_relative_to(fastai_home)


def test_archive_extract_to(folder, tmp_path, fastai_home):
    src = folder(n_per_class=2)
    with tarfile.open(tmp_path/'c.tgz', 'w:gz') as tf: tf.add(src, arcname='cifar10')
    root = cifar10_arrays(tmp_path/'c.tgz', extract_to=tmp_path/'here')['root']
    assert root.is_relative_to(tmp_path/'here')
    assert not any(fastai_home.rglob('*.png'))


def test_cache_used_then_rebuilt(folder, monkeypatch):
    src = folder(n_per_class=6)
    t0 = time.perf_counter(); x0, y0 = cifar10_arrays(src)['train']; t_first = time.perf_counter()-t0
    # second load: from the cache, without decoding a single image
    with monkeypatch.context() as m:
        m.setattr(S, 'read_image', lambda f: pytest.fail(f'decoded {f} although the cache is valid'))
        t0 = time.perf_counter(); x1, y1 = cifar10_arrays(src)['train']; t_second = time.perf_counter()-t0
    np.testing.assert_array_equal(x1, x0); np.testing.assert_array_equal(y1, y0)
    assert t_second < 1, t_second
    print(f'first load {t_first:.3f} s, cached {t_second:.3f} s')
    # a changed file rebuilds the cache
    f = src/'train'/'cat'/'0002.png'
    Image.fromarray(np.full((32,32,3), 7, np.uint8)).save(f)
    x2, y2 = cifar10_arrays(src)['train']
    i = CIFAR10_CLASSES.index('cat')*6 + 2
    assert (x2[i] == 7).all() and not (x0[i] == 7).all()
    np.testing.assert_array_equal(np.delete(x2, i, 0), np.delete(x0, i, 0))
    # so do an added and a removed file
    Image.fromarray(np.zeros((32,32,3), np.uint8)).save(src/'train'/'dog'/'9999.png')
    assert len(cifar10_arrays(src)['train'][1]) == 61
    (src/'train'/'dog'/'9999.png').unlink(); (src/'train'/'dog'/'0000.png').unlink()
    assert len(cifar10_arrays(src)['train'][1]) == 59


def test_cache_rebuilt_for_batches(folder, tmp_path):
    ref = cifar10_arrays(folder(n_per_class=3))
    bp = write_batches(ref, tmp_path/'cifar-10-batches-py')
    x0, _ = cifar10_arrays(bp)['train']
    d = pickle.load(open(bp/'data_batch_1', 'rb'))
    d['data'] = np.zeros_like(d['data'])
    time.sleep(0.01)
    with open(bp/'data_batch_1', 'wb') as f: pickle.dump(d, f, protocol=2)
    x1, _ = cifar10_arrays(bp)['train']
    assert (x1[:len(d['labels'])] == 0).all() and not (x0[:len(d['labels'])] == 0).all()


class _Evil:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.mkdir, (str(self.marker),))


def test_batches_never_unpickle_objects(tmp_path):
    bp = tmp_path/'cifar-10-batches-py'; bp.mkdir()
    marker = tmp_path/'pwned'
    for i in range(1, 6):
        with open(bp/f'data_batch_{i}', 'wb') as f: pickle.dump({'data': _Evil(marker), 'labels': [0]}, f)
    with pytest.raises(UserError, match='not a CIFAR-10 batch file'): cifar10_arrays(bp)
    assert not marker.exists()


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGBA', 'P', 'CMYK', 'I;16'])
def test_image_modes_become_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (32,32,3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    if mode == 'I;16': im = Image.fromarray(rgb[...,0].astype(np.uint16)*257) # 16-bit grey
    elif mode == 'P': im = im.convert('P', palette=Image.Palette.ADAPTIVE, colors=16)
    else: im = im.convert(mode)
    f = tmp_path/('img.jpg' if mode == 'CMYK' else 'img.png')
    im.save(f)
    a = read_image(f)
    assert a.shape == (32,32,3) and a.dtype == np.uint8
    if mode == 'I;16': want = np.repeat(rgb[...,:1], 3, -1) # scaled to 8 bits, not clipped at 255
    else:
        with Image.open(f) as im2: want = np.asarray(im2.convert('RGB'))
    np.testing.assert_array_equal(a, want)
    if mode in ('L', 'LA'): # grey is the same value in all three channels
        np.testing.assert_array_equal(a[...,0], a[...,1]); np.testing.assert_array_equal(a[...,0], a[...,2])
    if mode == 'P': assert len(np.unique(a.reshape(-1,3), axis=0)) <= 16


def test_mixed_modes_in_a_folder(folder):
    src = folder(n_per_class=2)
    Image.new('L', (32,32), 100).save(src/'train'/'cat'/'grey.png')
    Image.new('RGBA', (32,32), (1,2,3,0)).save(src/'train'/'dog'/'alpha.png')
    Image.new('RGB', (32,32), (9,8,7)).convert('P').save(src/'train'/'frog'/'pal.png')
    with warnings.catch_warnings():
        warnings.simplefilter('error', UnreadableImagesWarning)
        x, y = cifar10_arrays(src)['train']
    assert len(y) == 23
    assert (x == 100).all(axis=(1,2,3)).sum() == 1
    assert any((x[i] == np.array([1,2,3])[:,None,None]).all() for i in range(len(x)))


def test_unreadable_skipped_with_one_warning_then_strict(folder):
    src = folder(n_per_class=2)
    (src/'train'/'cat'/'notes.txt').write_text('not an image')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        assert len(cifar10_arrays(src)['train'][1]) == 20
    w = [o for o in w if issubclass(o.category, UnreadableImagesWarning)]
    assert len(w) == 1 and 'notes.txt' in str(w[0].message) and '--strict' in str(w[0].message)
    # the cache remembers the skipped file: strict still fails on the cached load
    with pytest.raises(UserError, match='notes.txt'): cifar10_arrays(src, strict=True)


# ---- the real data (ERA_S10_DATA) ----

def test_real_data_smoke(real_data):
    dls = cifar10_dls(real_data, bs=64, device='cpu')
    assert dls.valid_split == 'holdout' and (len(dls.train_ds), len(dls.valid_ds)) == (45000, 5000)
    xb, yb = dls.one_batch()
    assert xb.shape == (64,3,32,32) and xb.dtype == torch.float32
    assert yb.min() >= 0 and yb.max() <= 9 and yb.dtype == torch.int64
    dl = dls.train.new(shuffle=False)
    b1, b2 = dl.one_batch(), dl.one_batch()
    torch.testing.assert_close(b1[1], b2[1]) # the same images...
    assert not torch.equal(b1[0], b2[0])      # ...augmented differently
    v1, v2 = dls.valid.one_batch(), dls.valid.one_batch()
    assert torch.equal(v1[0], v2[0]) and torch.equal(v1[1], v2[1])
    assert set(torch.cat([dls.valid.ys[dls.valid.gidx]]).unique().tolist()) == set(range(10))


def test_real_data_cached_load_under_2s(real_data):
    cifar10_arrays(real_data) # decodes and caches, unless an earlier test did
    t0 = time.perf_counter()
    arrs = cifar10_arrays(real_data)
    dt = time.perf_counter() - t0
    x, y = arrs['train']
    assert x.shape == (50000,3,32,32) and np.bincount(y).tolist() == [5000]*10
    print(f'cached load of the real data: {dt:.2f} s')
    assert dt < 2, dt
