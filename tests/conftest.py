"""Fixtures for the era_s10 tests: small synthetic CIFAR-10 folders, a command-line runner, the real data (ERA_S10_DATA)
and one real training run shared by the end-to-end tests."""
import json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import pytest

# Archives must never be unpacked into ~/.fastai: point fastai's config (and every subprocess) at a temporary folder for
# the whole session, before anything imports fastai (its config is cached on first use).
FASTAI_HOME = Path(tempfile.mkdtemp(prefix='era_s10_fastai_home_'))
os.environ['FASTAI_HOME'] = str(FASTAI_HOME)
os.environ['MPLBACKEND'] = 'Agg'
# Under pytest-xdist (`-n 2` in both tiers) each worker and the commands it runs get one thread, so that two
# workers share the cores instead of four OpenMP threads spinning on two.
if os.environ.get('PYTEST_XDIST_WORKER'): os.environ.setdefault('OMP_NUM_THREADS', '1')
# hypothesis (tests/test_fuzz.py) keeps caches in ./.hypothesis unless told otherwise: keep them out of the repo too
os.environ['HYPOTHESIS_STORAGE_DIRECTORY'] = str(FASTAI_HOME/'hypothesis')

CLI = [sys.executable, '-m', 'era_s10.cli']


def pytest_sessionfinish(session, exitstatus): shutil.rmtree(FASTAI_HOME, ignore_errors=True)


# ---- the test tiers: `bash scripts/test.sh` runs `-m 'not slow'`, `bash scripts/test.sh --slow` runs `-m slow` ----

# Tests that train for more than about 30 s on 2 CPU cores without the real data, or that train in several processes
# one after another or side by side (the sweep's workers, a PostgreSQL server), named as `file::test` (a parametrized
# test by its function name); the real-data tests are marked by their fixture in `is_slow`. The fuzz tests stay quick:
# their derandomized examples take seconds (ERA_S10_FUZZ_EXAMPLES runs a longer session).
SLOW = {
    'test_faults.py::test_sigint_then_resume': 'a 4-epoch run interrupted by SIGINT, then resumed in a second process',
    'test_faults.py::test_sigkill_then_resume': 'a 4-epoch run killed, then resumed in a second process',
    'test_faults.py::test_sigterm_then_resume': 'a 4-epoch run with plots interrupted by SIGTERM, then resumed',
    'test_sweep.py::test_postgres_worker_joins': 'a PostgreSQL server, and sweeps in two processes that share it',
    'test_sweep.py::test_two_workers': 'a sweep of 4 trials in two worker processes',
    'test_sweep.py::test_sigterm_then_rerun': 'a sweep stopped by SIGTERM, then run again in a second process',
    'test_gpu_study.py::test_study_rehearsal': 'the GPU study script on the CPU: 10 trials, then a second call',
}


def is_slow(item)->bool:
    "A test of the slow tier: it uses the real data (`real_data`, also through `real_run`) or is named in `SLOW`"
    return 'real_data' in item.fixturenames or f'{item.path.name}::{item.originalname}' in SLOW


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item): item.add_marker(pytest.mark.slow)


@pytest.fixture
def fastai_home(tmp_path):
    "A fresh, empty FASTAI_HOME for one test (in this process and in subprocesses that get `env`)"
    from fastai.data.external import fastai_cfg
    home, old = tmp_path/'fastai_home', os.environ['FASTAI_HOME']
    home.mkdir()
    os.environ['FASTAI_HOME'] = str(home); fastai_cfg.cache_clear()
    yield home
    os.environ['FASTAI_HOME'] = old; fastai_cfg.cache_clear()


@pytest.fixture
def folder(tmp_path):
    "Make a small CIFAR-10 folder of random images under tmp_path: `folder('name', n_per_class=4, n_test=0, ext='.png')`"
    from era_s10.data import make_cifar_folder
    def make(name='cifar', **kwargs): return make_cifar_folder(tmp_path/name, **kwargs)
    return make


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    "100 random training images (90 train, 10 valid): tiny CPU runs, never modified by a test"
    from era_s10.data import make_cifar_folder
    return make_cifar_folder(tmp_path_factory.mktemp('tiny')/'cifar', n_per_class=10)


def run_cli(*args, env=None, cwd=None, timeout=1800, cmd=None):
    "Run `era-s10 *args` in a subprocess; returns the `CompletedProcess` (text stdout/stderr)"
    return subprocess.run([*(cmd or CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope='session')
def cli(): return run_cli


def check_user_error(r, *words):
    "`r` failed as a user error: exit code 2, no traceback, stderr is one `era-s10: error:` line containing `words`"
    out = r.stdout + r.stderr
    assert 'Traceback' not in out, out
    assert r.returncode == 2, (r.returncode, out)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('era-s10: error: '), r.stderr
    for w in words: assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope='session')
def user_error(): return check_user_error


# ---- ONNX: `era-s10 export --onnx` against PyTorch ----

def onnx_runtime():
    "onnxruntime, or skip the test when one of the optional ONNX packages is missing"
    for m in ('onnx', 'onnxscript', 'onnxruntime'):
        pytest.importorskip(m, reason=f"{m} is not installed: pip install 'era_s10[onnx]' (scripts/test.sh installs it)")
    import onnxruntime
    return onnxruntime


def check_onnx(run_dir, x):
    "`model.onnx` of `run_dir` in onnxruntime gives the PyTorch logits of the normalized uint8 images `x` (N,3,32,32)"
    import numpy as np, torch
    from fastai.vision.all import cifar_stats
    from era_s10.train import load_run
    sess = onnx_runtime().InferenceSession(str(run_dir/'model.onnx'), providers=['CPUExecutionProvider'])
    m, s = [torch.tensor(o).view(1, 3, 1, 1) for o in cifar_stats]
    xf = (torch.from_numpy(x).float()/255 - m)/s
    model = load_run(run_dir)[0]
    for b in (xf[:1], xf): # the batch axis is dynamic
        with torch.no_grad(): ref = model(b).numpy()
        got = sess.run(['logits'], {'image': b.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4, np.abs(got - ref).max()


@pytest.fixture(scope='session')
def onnx_parity():
    "`check_onnx`, after skipping the test when the ONNX packages are missing"
    onnx_runtime()
    return check_onnx


# ---- the real data ----

@pytest.fixture(scope='session')
def real_data():
    "The real CIFAR-10 archive or folder named by ERA_S10_DATA; skips the test when it is not set or missing"
    p = os.environ.get('ERA_S10_DATA')
    if not p: pytest.skip('ERA_S10_DATA is not set: point it at the CIFAR-10 training images (.tgz or folder) to run the real-data tests')
    if not Path(p).exists(): pytest.skip(f'ERA_S10_DATA={p} does not exist')
    return Path(p).resolve()


def console_script():
    "The installed `era-s10` command next to this Python, else `python -m era_s10.cli`"
    exe = Path(sys.executable).parent/'era-s10'
    return [str(exe)] if exe.exists() else CLI


@pytest.fixture(scope='session')
def real_run(real_data, tmp_path_factory):
    "`era-s10 train --data $ERA_S10_DATA --subset 2500 --epochs 3 --bs 128 --lr-find-its 40 --out <tmp>/r`, once a session"
    # at this scale `.ci/run` stays within 45 minutes on a 2-core CPU in fp32, where a range-test step costs a training step
    out = tmp_path_factory.mktemp('real')/'r'
    t0 = time.perf_counter()
    r = run_cli('train', '--data', real_data, '--subset', 2500, '--epochs', 3, '--bs', 128, '--lr-find-its', 40, '--out', out,
                cmd=console_script(), timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'Traceback' not in r.stderr, r.stderr
    print(f'\nreal training run: {time.perf_counter()-t0:.0f} s')
    return dict(dir=out, proc=r, summary=json.loads((out/'summary.json').read_text()))
