"""Hostile and broken archives: a 3 GB tar bomb and the other size limits are refused from the headers, before anything
is written; an extraction that fails part-way (Ctrl-C, a full disk) or gives unusable data leaves no folder and no
cache behind, and a later run works as if it had never been tried."""
import errno, gzip, io, tarfile, time
from pathlib import Path
import numpy as np, pytest
from PIL import Image
import era_s10.archives as A, era_s10.sources as S
from era_s10.data import cifar10_arrays, UserError, CIFAR10_CLASSES
from era_s10.cli import main


def tar_bomb(path:Path, size:int=3*10**9, chunk:int=10**7)->int:
    """Write a .tgz whose one member, `cifar10/train/cat/0000.png`, really unpacks to `size` zero bytes, and return the
    number of bytes the whole stream unpacks to. Cheap to make: gzip reads concatenated gzip members as one stream, so
    the zeros are compressed once and that member written `size//chunk` times."""
    m = tarfile.TarInfo('cifar10/train/cat/0000.png'); m.size = size
    head, zeros = m.tobuf(), gzip.compress(bytes(chunk))
    tail = bytes(size % chunk + (-size) % tarfile.BLOCKSIZE + 2*tarfile.BLOCKSIZE) # the rest, padding, end-of-archive blocks
    assert len(head) == tarfile.BLOCKSIZE and gzip.decompress(zeros) == bytes(chunk)
    with open(path, 'wb') as f:
        f.write(gzip.compress(head))
        for _ in range(size//chunk): f.write(zeros)
        f.write(gzip.compress(tail))
    return len(head) + size//chunk*chunk + len(tail)


def du(d:Path)->int: return sum(f.stat().st_size for f in d.rglob('*') if f.is_file())
def unpacked(home:Path)->list: return sorted(o.name for o in (home/'data').iterdir()) if (home/'data').exists() else []


def test_tar_bomb_refused(cli, user_error, tmp_path):
    bomb, home = tmp_path/'bomb.tgz', tmp_path/'fastai_home'
    t0 = time.perf_counter(); n = tar_bomb(bomb); t_make = time.perf_counter()-t0
    assert n > 3*10**9 and bomb.stat().st_size < 20*2**20 # a real bomb: 3 GB of zeros in a few MB
    with tarfile.open(bomb) as tf: assert tf.next().size == 3*10**9
    t0 = time.perf_counter()
    r = cli('train', '--data', bomb, '--epochs', 1, '--out', tmp_path/'run', env=dict(FASTAI_HOME=str(home)))
    dt = time.perf_counter()-t0
    line = user_error(r, str(bomb), "'cifar10/train/cat/0000.png'", '3,000,000,000 bytes', 'over the 1 MiB limit', 'refusing to extract')
    assert unpacked(home) == [] and du(home) < 2**20, (unpacked(home), du(home))
    # refused from the header alone: the first 20 MB of zeros, cut off, give the same line (reading on would hit the cut)
    cut = tmp_path/'cut'/'bomb.tgz'; cut.parent.mkdir()
    m = tarfile.TarInfo('cifar10/train/cat/0000.png'); m.size = 3*10**9 # the same header as in the bomb
    cut.write_bytes(bomb.read_bytes()[:len(gzip.compress(m.tobuf())) + 2*len(gzip.compress(bytes(10**7)))])
    t1 = time.perf_counter()
    with pytest.raises(UserError, match="has a member of 3,000,000,000 bytes"): A.check_archive(cut)
    print(f'\nbomb made in {t_make:.2f} s ({bomb.stat().st_size:,} bytes); refused in {time.perf_counter()-t1:.3f} s by check_archive, '
          f'in {dt:.1f} s by the whole command (start-up included): {line}')
    assert sorted(o.name for o in tmp_path.iterdir()) == ['bomb.tgz', 'cut', 'fastai_home'] # no run folder either


def _archive(path:Path, members:list, mode='w:gz')->Path:
    "A tar of `members`: (name, bytes) for files, (name, None) for folders"
    with tarfile.open(path, mode) as tf:
        for name, b in members:
            m = tarfile.TarInfo(name)
            if b is None: m.type = tarfile.DIRTYPE; tf.addfile(m)
            else: m.size = len(b); tf.addfile(m, io.BytesIO(b))
    return path


@pytest.fixture
def good(folder, tmp_path):
    "A .tgz of a CIFAR-10 folder with 2 images per class, and the folder's arrays"
    src = folder(n_per_class=2)
    with tarfile.open(tmp_path/'good.tgz', 'w:gz') as tf: tf.add(src, arcname='cifar10')
    return tmp_path/'good.tgz', cifar10_arrays(src)['train']


def test_limits_name_member_and_limit(tmp_path, fastai_home, monkeypatch):
    Image.new('RGB', (32,32)).save(tmp_path/'x.png'); img = (tmp_path/'x.png').read_bytes()
    big = bytes(A.MAX_MEMBER_BYTES + 1)
    arc = _archive(tmp_path/'a.tgz', [('cifar10/train/cat/big.png', big)])
    with pytest.raises(UserError, match=r"a member of 1,048,577 bytes \('cifar10/train/cat/big.png'\), over the 1 MiB limit"): cifar10_arrays(arc)
    # torchvision's batch files may be larger: 10,000 images are about 31 MB
    arc = _archive(tmp_path/'b.tgz', [('cifar-10-batches-py/data_batch_1', big)])
    with pytest.raises(UserError, match='data_batch_1 is not a CIFAR-10 batch file'): cifar10_arrays(arc) # past the size check
    arc = _archive(tmp_path/'c.tgz', [('cifar-10-batches-py/data_batch_1', bytes(A.MAX_BATCH_BYTES + 1))])
    with pytest.raises(UserError, match=r"\('cifar-10-batches-py/data_batch_1'\), over the 64 MiB limit"): cifar10_arrays(arc)
    # the total and the member count: lowered here, so that a small archive reaches them
    files = [(f'cifar10/train/{c}/{i}.png', img) for c in CIFAR10_CLASSES for i in range(3)]
    arc = _archive(tmp_path/'d.tgz', files)
    monkeypatch.setattr(A, 'MAX_TOTAL_BYTES', 10*len(img))
    with pytest.raises(UserError, match=r"unpacks to more than 820 bytes \(at 'cifar10/train/cat/1.png'\), the limit for CIFAR-10"): cifar10_arrays(arc)
    monkeypatch.setattr(A, 'MAX_TOTAL_BYTES', 2**31); monkeypatch.setattr(A, 'MAX_MEMBERS', 20)
    with pytest.raises(UserError, match=r"more than 20 members \(at 'cifar10/train/frog/2.png'\)"): cifar10_arrays(arc)
    assert unpacked(fastai_home) == []
    monkeypatch.setattr(A, 'MAX_MEMBERS', 30)
    assert len(cifar10_arrays(arc)['train'][1]) == 30 # at the limit: fine


def test_bytes_written_are_counted_too(good, fastai_home, monkeypatch):
    "Should a header understate its member, the bytes really written still stop the extraction"
    arc, _ = good
    monkeypatch.setattr(A, 'check_archive', lambda a: []) # as if every header passed
    monkeypatch.setattr(A, 'MAX_TOTAL_BYTES', 10_000)
    with pytest.raises(UserError, match='unpacked to more than'): cifar10_arrays(arc)
    assert unpacked(fastai_home) == []


@pytest.mark.parametrize('fault', ['KeyboardInterrupt', 'disk full', 'interrupted while decoding'])
def test_failed_extraction_leaves_nothing(good, fastai_home, monkeypatch, fault):
    arc, (x, y) = good
    calls = []
    def boom(*a):
        calls.append(a)
        if len(calls) == 5: raise KeyboardInterrupt if fault != 'disk full' else OSError(errno.ENOSPC, 'No space left on device')
        return orig(*a)
    if fault == 'interrupted while decoding': orig = S.read_image; monkeypatch.setattr(S, 'read_image', boom)
    else: orig = tarfile.TarFile.makefile; monkeypatch.setattr(tarfile.TarFile, 'makefile', lambda self, *a: boom(self, *a))
    if fault == 'disk full':
        with pytest.raises(UserError, match=r'cannot unpack archive .*\(\[Errno 28\] No space left on device\): check the archive and the free disk space'):
            cifar10_arrays(arc)
    else:
        with pytest.raises(KeyboardInterrupt): cifar10_arrays(arc)
    assert len(calls) == 5 # stopped part-way
    assert unpacked(fastai_home) == [] and not list(fastai_home.rglob('*.npy'))
    monkeypatch.undo()
    got = cifar10_arrays(arc) # a later run works as if the failed one had never been tried
    np.testing.assert_array_equal(got['train'][0], x); np.testing.assert_array_equal(got['train'][1], y)
    assert unpacked(fastai_home) == [got['root'].parent.name] and (got['root'].parent/'.era_s10_done').exists()


def test_ctrl_c_during_extraction_through_the_cli(good, fastai_home, monkeypatch, capsys):
    arc, _ = good
    n = []
    def interrupt(self, *a):
        n.append(1)
        if len(n) == 3: raise KeyboardInterrupt
        return orig(self, *a)
    orig = tarfile.TarFile.makefile
    monkeypatch.setattr(tarfile.TarFile, 'makefile', interrupt)
    with pytest.raises(SystemExit) as e: main(['train', '--data', str(arc), '--epochs', '1', '--device', 'cpu'])
    assert e.value.code == 130 and capsys.readouterr().err.strip() == 'era-s10: interrupted'
    assert unpacked(fastai_home) == []


@pytest.mark.parametrize('members, error', [
    ([('cifar10/training/cat/0.png', b'x')], 'no train/ folder'),
    ([('cifar10/train/cat/0.png', b'x')], 'lacks class folders'),
    ([(f'cifar10/train/{c}/0.png', b'not an image') for c in CIFAR10_CLASSES], 'no readable images'),
    ([(f'cifar-10-batches-py/data_batch_{i}', b'\x80\x02}q\x00.') for i in range(1, 6)], 'is not a CIFAR-10 batch file'),
])
def test_unusable_archive_leaves_nothing(tmp_path, fastai_home, folder, members, error):
    arc = _archive(tmp_path/'c.tgz', members)
    for _ in range(2): # and the second try fails the same way: no finished-looking folder was kept
        with pytest.raises(UserError, match=error): cifar10_arrays(arc)
        assert unpacked(fastai_home) == [] and not list(fastai_home.rglob('*.npy'))
    # a good archive at the same path then works
    src = folder(n_per_class=1)
    with tarfile.open(arc, 'w:gz') as tf: tf.add(src, arcname='cifar10')
    assert len(cifar10_arrays(arc)['train'][1]) == 10 and len(unpacked(fastai_home)) == 1


def test_killed_extraction_is_redone(good, fastai_home):
    "A folder without the done marker (the process was killed while checking it) is unpacked again"
    arc, (x, _) = good
    root = cifar10_arrays(arc)['root']
    (root.parent/'.era_s10_done').unlink(); (root/'train'/'cat'/'0000.png').write_bytes(b'half-written')
    np.testing.assert_array_equal(cifar10_arrays(arc)['train'][0], x)
    assert (root.parent/'.era_s10_done').exists() and unpacked(fastai_home) == [root.parent.name]


@pytest.mark.parametrize('damage', ['truncated at a header', 'bad header'])
def test_damaged_tar_refused(tmp_path, fastai_home, folder, damage):
    "A plain .tar has no checksum: members after a damaged or missing header would be lost without a word"
    src = folder(n_per_class=1)
    with tarfile.open(tmp_path/'c.tar', 'w', format=tarfile.USTAR_FORMAT) as tf: tf.add(src, arcname='cifar10')
    b = (tmp_path/'c.tar').read_bytes()
    with tarfile.open(tmp_path/'c.tar') as tf: last = tf.getmembers()[-1]
    if damage == 'bad header': b = b[:last.offset] + b'\xff'*10 + b[last.offset+10:]
    else: b = b[:last.offset]
    (tmp_path/'c.tar').write_bytes(b)
    prev = tarfile.open(tmp_path/'c.tar').getmembers()[-1].name # what tarfile reads without a word
    with pytest.raises(UserError, match=f"is truncated or damaged after '{prev}'"): cifar10_arrays(tmp_path/'c.tar')
    assert unpacked(fastai_home) == []


@pytest.mark.parametrize('file_first', [True, False])
def test_file_and_folder_of_one_name_refused(tmp_path, fastai_home, file_first):
    "tarfile would keep the file if it comes first, and fail if the folder does: refused either way, before unpacking"
    members = [('cifar10/train/cat/x', b'an image?'), ('cifar10/train/cat/x/0.png', b'or a folder?')]
    arc = _archive(tmp_path/'c.tgz', members if file_first else members[::-1])
    with pytest.raises(UserError, match="has 'cifar10/train/cat/x' both as a file and as a folder"): cifar10_arrays(arc)
    assert unpacked(fastai_home) == []


def test_old_cache_in_archive_skipped(folder, tmp_path, fastai_home):
    "A tar of a folder that was used before holds our cache, whose arrays can be over the 1 MiB limit: it is left out"
    src = folder(n_per_class=1)
    x, y = cifar10_arrays(src)['train']
    (src/'.era_s10_cache'/'train_x.npy').write_bytes(bytes(2*A.MAX_MEMBER_BYTES)) # as large as a real cache
    with tarfile.open(tmp_path/'c.tgz', 'w:gz') as tf: tf.add(src, arcname='cifar10')
    got = cifar10_arrays(tmp_path/'c.tgz')
    np.testing.assert_array_equal(got['train'][0], x)
    assert (got['root']/'.era_s10_cache'/'train_x.npy').stat().st_size < A.MAX_MEMBER_BYTES # rebuilt, not unpacked
