"""`era-s10 sweep` (issue 32) on tiny data at one epoch: a 2 x 2 grid, SIGTERM then a rerun, two workers, a worker
joining a study in a real PostgreSQL server on loopback, and the one-line errors."""
import csv, os, shutil, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path
import pytest

pytest.importorskip('optuna')

SWEEP = [sys.executable, '-m', 'era_s10.cli', 'sweep']
# one epoch of two batches, the LRs given so that no LR finder runs
TRAIN = ('--epochs', '1', '--bs', '16', '--subset', '32', '--lr-min', '1e-3', '--lr-max', '1e-2', '--no-plots',
         '--device', 'cpu')
COLUMNS = ['trial', 'seed', 'wd', 'valid_accuracy', 'valid_accuracy_tta', 'epochs_seconds', 'lr_min', 'lr_max',
           'run_dir', 'state']


def sweep(*args, wait=True, env=None, timeout=600):
    "Run `era-s10 sweep *args`: the `CompletedProcess`, or the running `Popen` when not `wait`"
    cmd, env = [*SWEEP, *map(str, args)], {**os.environ, **(env or {})}
    if not wait: return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def grid(data, out, *extra):
    "The options of a 2 x 2 sweep: wd by two seeds"
    return ('--data', data, '--out', out, '--grid', 'wd=0.5,0.1', '--seeds', '0,1', *TRAIN, *extra)


def rows(out): return list(csv.DictReader(open(Path(out)/'results.csv')))


def study_trials(out, storage=None):
    "The trials of the sweep's Optuna study"
    import optuna
    from era_s10.sweep import open_storage
    return optuna.load_study(study_name='sweep', storage=open_storage(storage or str(Path(out)/'study.log'))).trials


def runs_per_point(trials)->dict:
    "How many trials started each grid point (a PRUNED one never trained: the queue had given it away)"
    n = {}
    for t in trials:
        if t.state.name != 'PRUNED': n[t.user_attrs['grid_id']] = n.get(t.user_attrs['grid_id'], 0) + 1
    return n


def test_grid_2x2(tiny_data, tmp_path):
    r = sweep(*grid(tiny_data, tmp_path/'s'))
    assert r.returncode == 0, r.stderr
    rs = rows(tmp_path/'s')
    assert [r_['state'] for r_ in rs] == ['COMPLETE']*4 and list(rs[0]) == COLUMNS
    assert [(r_['wd'], r_['seed']) for r_ in rs] == [('0.5', '0'), ('0.5', '1'), ('0.1', '0'), ('0.1', '1')]
    assert all((Path(r_['run_dir'])/'summary.json').exists() for r_ in rs)
    assert all(float(r_['lr_min']) == 1e-3 and float(r_['valid_accuracy_tta']) >= 0 for r_ in rs)
    md = (tmp_path/'s'/'summary.md').read_text()
    assert 'wd=0.1' in md and 'baseline' in md and md in r.stdout and (tmp_path/'s'/'sweep.png').stat().st_size > 0
    assert 'sweep: 4/4 done, 0 running, 0 failed' in r.stdout


def _wait_for(f, what, p, timeout=300):
    t0 = time.time()
    while not f():
        if p.poll() is not None: pytest.fail(f'the sweep ended before {what}: {p.communicate()}')
        if time.time() - t0 > timeout: p.kill(); pytest.fail(f'no {what} after {timeout} s')
        time.sleep(0.2)


def test_sigterm_then_rerun(tiny_data, tmp_path):
    out = tmp_path/'s'
    p = sweep(*grid(tiny_data, out), wait=False)
    first = out/'trials'/'0'/'model.pth'
    _wait_for(lambda: (out/'results.csv').exists() and any(r['state'] == 'COMPLETE' for r in rows(out)), 'trial', p)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode in (0, 130), err
    mtime, left = first.stat().st_mtime_ns, sum(r['state'] == 'COMPLETE' for r in rows(out))
    assert left < 4 or p.returncode == 0
    r = sweep(*grid(tiny_data, out))
    assert r.returncode == 0, r.stderr
    assert [r_['state'] for r_ in rows(out)] == ['COMPLETE']*4
    assert first.stat().st_mtime_ns == mtime # the finished trial was not trained again
    assert sorted(d.name for d in (out/'trials').iterdir()) == ['0', '1', '2', '3'] # resumed in place, no siblings
    assert all(n == 1 for g, n in runs_per_point(study_trials(out)).items() if g == 0)


def test_two_workers(tiny_data, tmp_path):
    out = tmp_path/'s'
    r = sweep(*grid(tiny_data, out, '--workers', '2'))
    assert r.returncode == 0, r.stderr
    rs = rows(out)
    assert [r_['state'] for r_ in rs] == ['COMPLETE']*4 and len({r_['run_dir'] for r_ in rs}) == 4
    assert runs_per_point(study_trials(out)) == {0: 1, 1: 1, 2: 1, 3: 1} # no trial ran twice
    assert sorted(p.name for p in (out/'workers').iterdir()) == ['0.log', '1.log']


def test_failing_trial_is_a_fail_row(tiny_data, tmp_path):
    "A batch size larger than the training set fails its trial; the other trial goes on"
    r = sweep('--data', tiny_data, '--out', tmp_path/'s', '--grid', 'bs=4096,16', '--seeds', '0', *TRAIN[:2], *TRAIN[4:])
    assert r.returncode == 0, r.stderr
    bad, good = rows(tmp_path/'s')
    assert (bad['state'], good['state']) == ('FAIL', 'COMPLETE') and list(bad)[-1] == 'error'
    assert 'pass a smaller --bs' in bad['error'] and '\n' not in bad['error']
    assert 'sweep: 1/2 done, 0 running, 1 failed' in r.stdout


def test_bad_grid_key_is_one_line(tiny_data, tmp_path):
    for bad, word in (('wdd=0.5,1', "'wdd'"), ('wd=0.5,-1', 'wd=-1'), ('seed=1,2', '--seeds')):
        r = sweep('--data', tiny_data, '--out', tmp_path/'s', '--grid', bad, *TRAIN)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and word in r.stderr, (bad, r.stderr)
    assert not (tmp_path/'s'/'trials').exists()
    r = sweep('--data', tiny_data, '--out', tmp_path/'s', '--grid', 'lr_div=10,100', *TRAIN)
    assert r.returncode == 2 and 'grid point lr_div=10.0, seed=0: --lr-div' in r.stderr, r.stderr


def test_bad_variant_is_one_line(tiny_data, tmp_path):
    "A bad `--variant`, or one beside `--grid`, stops the sweep before any trial (22_sweep tests the other cases)"
    for extra, word in ((['--variant', 'wdd=1'], "'wdd'"),
                        (['--variant', 'defaults', '--grid', 'wd=0.5,1'], '--grid and')):
        r = sweep('--data', tiny_data, '--out', tmp_path/'s', *extra, *TRAIN)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and word in r.stderr, (extra, r.stderr)
    assert not (tmp_path/'s').exists()


def test_without_optuna(tmp_path):
    (tmp_path/'optuna').mkdir()
    (tmp_path/'optuna'/'__init__.py').write_text("raise ImportError('no optuna here')\n")
    r = sweep('--out', tmp_path/'s', env={'PYTHONPATH': os.pathsep.join([str(tmp_path), *sys.path])})
    assert r.returncode == 2 and r.stderr.strip() == "era-s10: error: era-s10 sweep needs Optuna: pip install 'era_s10[sweep]'"


# ---- a real PostgreSQL server on loopback, started here ----

def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _pg_user()->list:
    "The command prefix that runs the server's tools as a non-root user (initdb refuses root)"
    if os.geteuid() != 0: return []
    import pwd
    try: pwd.getpwnam('postgres')
    except KeyError: pytest.skip('running as root, and there is no postgres user to run the PostgreSQL server as')
    return ['runuser', '-u', 'postgres', '--']


@pytest.fixture(scope='module')
def postgres():
    "The URL of a database in a fresh PostgreSQL server on 127.0.0.1, stopped at the end"
    # Debian keeps initdb and pg_ctl off the PATH, in /usr/lib/postgresql/VERSION/bin
    found = shutil.which('pg_ctl')
    bins = [Path(found).parent] if found and (Path(found).parent/'initdb').exists() else sorted(Path('/usr/lib/postgresql').glob('*/bin'), key=lambda p: int(p.parent.name))
    if not bins: pytest.skip('PostgreSQL is not installed (Debian: apt-get install postgresql)')
    pre, d, port = _pg_user(), Path(tempfile.mkdtemp(prefix='era_s10_pg_')), _free_port()
    if pre: shutil.chown(d, 'postgres')
    run = lambda *a: subprocess.run([*pre, *map(str, a)], capture_output=True, text=True, timeout=120)
    steps = [(bins[-1]/'initdb', '-D', d/'data', '-U', 'sweep', '--auth=trust'),
             (bins[-1]/'pg_ctl', '-D', d/'data', '-l', d/'log', '-w', '-o', f'-p {port} -k {d} -h 127.0.0.1', 'start')]
    for s in steps:
        r = run(*s)
        if r.returncode: shutil.rmtree(d, ignore_errors=True); pytest.skip(f'the PostgreSQL server did not start: {s[0].name}: '
                                                                        f'{(r.stderr or r.stdout).strip()[-300:]}')
    yield f'postgresql://sweep@127.0.0.1:{port}/postgres' # the database initdb makes
    run(bins[-1]/'pg_ctl', '-D', d/'data', '-m', 'fast', 'stop'); shutil.rmtree(d, ignore_errors=True)


def test_postgres_worker_joins(tiny_data, tmp_path, postgres):
    a = sweep(*grid(tiny_data, tmp_path/'a', '--storage', postgres, '--trials', '2'))
    assert a.returncode == 0, a.stderr
    assert [r['state'] for r in rows(tmp_path/'a')] == ['COMPLETE']*2
    b = sweep(*grid(tiny_data, tmp_path/'b', '--storage', postgres)) # another process, folder or machine joins
    assert b.returncode == 0, b.stderr
    rs = rows(tmp_path/'b')
    assert [r['state'] for r in rs] == ['COMPLETE']*4
    assert sorted(Path(r['run_dir']).parent.parent.name for r in rs) == ['a', 'a', 'b', 'b']
    assert runs_per_point(study_trials(None, postgres)) == {0: 1, 1: 1, 2: 1, 3: 1}
    other = sweep(*grid(tiny_data, tmp_path/'c', '--storage', postgres, '--epochs', '2'))
    assert other.returncode == 2 and 'holds another sweep' in other.stderr, other.stderr
