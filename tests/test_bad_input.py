"""Bad input through the command line: one `era-s10: error:` line on stderr naming the problem and the fix, exit code 2,
no traceback. Unreadable images are skipped with one warning line (or are an error with --strict)."""
import io, json, shutil, tarfile
import numpy as np, pytest, torch
from PIL import Image
import era_s10.data, era_s10.sources
from era_s10.cli import main

TINY = ['--epochs', 1, '--bs', 8, '--lr-min', 1e-4, '--lr-max', 1e-3, '--no-plots', '--device', 'cpu']


def test_nonexistent_path(cli, user_error, tmp_path):
    user_error(cli('train', '--data', tmp_path/'nope', '--epochs', 1), 'does not exist', '--data')


def test_empty_folder(cli, user_error, tmp_path):
    (tmp_path/'empty').mkdir()
    user_error(cli('train', '--data', tmp_path/'empty', '--epochs', 1), 'is empty', 'train/<class>/')


def test_missing_train(cli, user_error, tmp_path, folder):
    src = folder(n_per_class=1)
    (src/'train').rename(src/'training')
    (src/'other').mkdir()
    user_error(cli('train', '--data', src, '--epochs', 1), 'no train/ folder', 'train/<class>/')


def test_missing_class_folders(cli, user_error, folder):
    src = folder(n_per_class=1)
    shutil.rmtree(src/'train'/'cat'); shutil.rmtree(src/'train'/'truck')
    user_error(cli('train', '--data', src, '--epochs', 1), 'lacks class folders cat, truck', 'one folder per CIFAR-10 class')


def _add_bad_files(src):
    "A text file, a truncated JPEG and a truncated PNG among the good images"
    (src/'train'/'bird'/'readme.txt').write_text('not an image')
    for ext, fmt, cls in (('.jpg', 'JPEG', 'cat'), ('.png', 'PNG', 'dog')):
        b = io.BytesIO(); Image.fromarray(np.full((32,32,3), 99, np.uint8)).save(b, fmt)
        (src/'train'/cls/f'broken{ext}').write_bytes(b.getvalue()[:len(b.getvalue())//2])
    return ['readme.txt', 'broken.jpg', 'broken.png']


def test_unreadable_files_skipped_with_one_warning(cli, folder, tmp_path):
    src = folder(n_per_class=3)
    names = _add_bad_files(src)
    r = cli('train', '--data', src, *TINY, '--out', tmp_path/'run')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    warn = [l for l in r.stderr.splitlines() if 'unreadable' in l]
    assert len(warn) == 1, r.stderr
    assert warn[0].startswith('era-s10: warning: 3 unreadable image file(s)') and '--strict' in warn[0], warn[0]
    for n in names: assert n in warn[0], (n, warn[0])
    s = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert s['n_train'] + s['n_valid'] == 30 # the 30 good images, the run went on


def test_unreadable_files_strict(cli, user_error, folder, tmp_path):
    src = folder(n_per_class=3)
    names = _add_bad_files(src)
    user_error(cli('train', '--data', src, *TINY, '--strict', '--out', tmp_path/'run'), '3 unreadable image file(s)', 'drop --strict', *names)


def test_wrong_image_size(cli, user_error, folder):
    src = folder(n_per_class=2)
    Image.fromarray(np.zeros((28,30,3), np.uint8)).save(src/'train'/'ship'/'big.png')
    user_error(cli('train', '--data', src, '--epochs', 1), 'is 30x28', '32x32')


# ---- archives: refused before anything is written ----

def _evil_archive(path, kind, target):
    with tarfile.open(path, 'w:gz') as tf:
        good = tarfile.TarInfo('cifar10/train/cat/0000.png'); data = b'x'*10; good.size = len(data)
        tf.addfile(good, io.BytesIO(data))
        if kind == 'absolute': m = tarfile.TarInfo(str(target)); m.size = 4; tf.addfile(m, io.BytesIO(b'evil'))
        elif kind == 'dotdot': m = tarfile.TarInfo('cifar10/../../' + target.name); m.size = 4; tf.addfile(m, io.BytesIO(b'evil'))
        elif kind == 'symlink': m = tarfile.TarInfo('cifar10/train/dog'); m.type = tarfile.SYMTYPE; m.linkname = str(target.parent); tf.addfile(m)
        elif kind == 'hardlink': m = tarfile.TarInfo('cifar10/train/x.png'); m.type = tarfile.LNKTYPE; m.linkname = '/etc/passwd'; tf.addfile(m)
        elif kind == 'device': m = tarfile.TarInfo('cifar10/train/null'); m.type = tarfile.CHRTYPE; m.devmajor, m.devminor = 1, 3; tf.addfile(m)
    return path


@pytest.mark.parametrize('kind, why', [('absolute', 'an absolute path'), ('dotdot', "a '..' path"), ('symlink', 'a link'),
                                       ('hardlink', 'a link'), ('device', 'a device or special file')])
def test_unsafe_archive_refused(cli, user_error, tmp_path, kind, why):
    home = tmp_path/'fastai_home'
    target = tmp_path/'outside'/'evil.txt'
    arc = _evil_archive(tmp_path/'evil.tgz', kind, target)
    user_error(cli('train', '--data', arc, '--epochs', 1, env=dict(FASTAI_HOME=str(home))), f'has {why}', 'refusing to extract')
    assert not target.exists()
    assert not (home/'data').exists() or not any((home/'data').iterdir()) # nothing was unpacked


def test_corrupt_archive(cli, user_error, tmp_path):
    (tmp_path/'c.tgz').write_bytes(b'\x1f\x8b not really gzip')
    user_error(cli('train', '--data', tmp_path/'c.tgz', '--epochs', 1, env=dict(FASTAI_HOME=str(tmp_path/'h'))), 'cannot read archive', 'valid .tgz')


def test_offline_download_names_data(monkeypatch, capsys, fastai_home):
    def offline(*a, **k): raise ConnectionError('Temporary failure in name resolution')
    monkeypatch.setattr(era_s10.sources, 'untar_data', offline)
    with pytest.raises(SystemExit) as e: main(['train', '--epochs', '1'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('era-s10: error: could not download CIFAR-10') and '--data' in err[0], err


# ---- options ----

@pytest.mark.parametrize('args, words', [
    (['--epochs', '0'], ['argument --epochs', 'must be at least 1, got 0']),
    (['--bs', '0'], ['argument --bs', 'must be at least 1, got 0']),
    (['--epochs', 'two'], ['argument --epochs', "'two' is not an integer"]),
    (['--lr-min', '1e-2', '--lr-max', '1e-3'], ['--lr-min 0.01 must be below --lr-max 0.001']),
    (['--lr-min', '1e-3', '--lr-max', '1e-3'], ['--lr-min 0.001 must be below --lr-max 0.001']),
    (['--lr-min', '1e-3'], ['pass both --lr-min and --lr-max']),
    (['--lr-div', '1'], ['argument --lr-div', 'must be above 1, got 1', 'for example 100']),
    (['--lr-div', 'ten'], ['argument --lr-div', "'ten' is not a number"]),
    (['--lr-div', '100', '--lr-min', '1e-4', '--lr-max', '1e-3'], ['--lr-div sets LRMIN', 'drop --lr-div, or drop --lr-min and --lr-max']),
    (['--label-smoothing', '1'], ['argument --label-smoothing', 'must be in [0, 1), got 1', '0 for none']),
    (['--label-smoothing', '-0.1'], ['argument --label-smoothing', 'must be in [0, 1), got -0.1']),
])
def test_bad_options(cli, user_error, tiny_data, args, words):
    user_error(cli('train', '--data', tiny_data, *args), *words)


def test_subset_larger_than_data(cli, user_error, tiny_data, tmp_path):
    user_error(cli('train', '--data', tiny_data, '--subset', 101, '--epochs', 1, '--out', tmp_path/'r'),
               '--subset 101 is out of range', 'pass 1..100')


def test_bs_larger_than_train(cli, user_error, tiny_data, tmp_path):
    user_error(cli('train', '--data', tiny_data, '--bs', 500, '--epochs', 1, '--lr-min', 1e-4, '--lr-max', 1e-3, '--out', tmp_path/'r'),
               '--bs 500 is larger than the 90 training images', 'smaller --bs')


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_without_cuda(cli, user_error, tiny_data, tmp_path):
    user_error(cli('train', '--data', tiny_data, '--device', 'cuda', '--epochs', 1, '--out', tmp_path/'r'),
               'no CUDA GPU is available', '--device cpu')


def test_out_holding_a_run_gets_a_new_folder(cli, tiny_data, tmp_path):
    out = tmp_path/'run'; out.mkdir()
    old = {'summary.json': b'{"valid_accuracy": 0.5}', 'model.pth': b'old weights'}
    for n, b in old.items(): (out/n).write_bytes(b)
    stamp = {n: (out/n).stat().st_mtime_ns for n in old}
    r = cli('train', '--data', tiny_data, *TINY, '--out', out)
    assert r.returncode == 0, r.stderr
    assert f'run folder: {tmp_path/"run-2"}' in r.stdout, r.stdout
    assert (tmp_path/'run-2'/'model.pth').exists() and (tmp_path/'run-2'/'summary.json').exists()
    assert sorted(o.name for o in out.iterdir()) == sorted(old)
    for n, b in old.items(): assert (out/n).read_bytes() == b and (out/n).stat().st_mtime_ns == stamp[n]


# ---- the other commands ----

def test_resume_without_checkpoint(cli, user_error, tmp_path):
    (tmp_path/'r').mkdir()
    user_error(cli('train', '--resume', tmp_path/'r'), 'holds no checkpoint.pth', 'era-s10 train')


def test_resume_refuses_new_settings(cli, user_error, tmp_path):
    "A resumed run keeps its own settings, so options that would change them are an error rather than ignored"
    (tmp_path/'r').mkdir()
    user_error(cli('train', '--resume', tmp_path/'r', '--epochs', 30, '--label-smoothing', 0),
               f"--resume continues {tmp_path/'r'} with the settings in its config.json: drop --epochs, --label-smoothing")
    assert list((tmp_path/'r').iterdir()) == []


def test_evaluate_and_predict_bad_input(tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as e: main([str(a) for a in args])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith('era-s10: error: '), err
        return err[0]
    assert 'holds no model.pth' in run('evaluate', tmp_path)
    assert 'does not exist' in run('predict', tmp_path, tmp_path/'missing.png')
    rd = tmp_path/'run'; rd.mkdir()
    from era_s10.model import CustomResNet
    torch.save(CustomResNet().state_dict(), rd/'model.pth')
    (tmp_path/'x.png').write_text('not an image')
    assert f"no readable images in {tmp_path/'x.png'} (1 unreadable file(s)" in run('predict', rd, tmp_path/'x.png')
    assert 'no image files in' in run('predict', rd, rd) # a folder without images
    Image.new('RGB', (64,64)).save(tmp_path/'big.png')
    main(['predict', str(rd), str(tmp_path/'big.png'), '--device', 'cpu']) # other sizes are squished to 32x32
    out = capsys.readouterr().out.strip().split('\t')
    assert out[0] == str(tmp_path/'big.png') and out[1] in era_s10.data.CIFAR10_CLASSES, out
    (tmp_path/'p.csv').write_text('keep me')
    assert 'already exists' in run('predict', rd, tmp_path/'big.png', '--csv', tmp_path/'p.csv')
    assert (tmp_path/'p.csv').read_text() == 'keep me'
    torch.save({'not': torch.zeros(1)}, rd/'model.pth')
    assert 'is not a CustomResNet state_dict' in run('predict', rd, tmp_path/'big.png')


def test_only_unreadable_images_is_one_line(folder, capsys):
    "A split with no readable image: one error line that counts the unreadable files, not a warning and then an error"
    src = folder(n_per_class=1)
    for f in (src/'train').rglob('*.png'): f.write_bytes(b'not an image')
    with pytest.raises(SystemExit) as e: main(['train', '--data', str(src), '--epochs', '1', '--device', 'cpu'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"era-s10: error: no readable images in {src/'train'} (10 unreadable file(s), such as "), err


def test_warning_then_error_is_one_line(folder, capsys):
    "Unreadable files in train/ and an error in test/: the error alone, not the warning about train/ before it"
    src = folder(n_per_class=2, n_test=1)
    (src/'train'/'cat'/'0000.png').write_bytes(b'not an image')
    for f in (src/'test').rglob('*.png'): f.unlink()
    with pytest.raises(SystemExit) as e: main(['train', '--data', str(src), '--epochs', '1', '--device', 'cpu'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0] == f"era-s10: error: no images in {src/'test'}: add image files to its class folders", err
