"""Training faults: a NaN loss, a diverging LR range test, and runs interrupted by SIGINT or SIGKILL that resume to the
same weights as an uninterrupted run."""
import csv, json, signal, subprocess, sys, time
import pytest, torch
import era_s10.learner
from era_s10.learner import PlainCrossEntropyLoss
from era_s10.cli import main
CLI = [sys.executable, "-m", "era_s10.cli"]

SEED_RUN = ['--epochs', 4, '--bs', 16, '--lr-min', 1e-4, '--lr-max', 2e-3, '--seed', 7, '--device', 'cpu']
N_ITER = 90//16 # iterations per epoch of `tiny_data` at --bs 16 (fastai drops the last partial training batch)


def read_csv(f):
    with open(f) as fh: return list(csv.DictReader(fh))


def run_main(*args):
    "Run the CLI in this process; returns (exit code, stderr lines)"
    import contextlib, io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: main([str(a) for a in args]); code = 0
        except SystemExit as e: code = e.code
    return code, err.getvalue().strip().splitlines()


def test_nan_from_huge_lr(cli, user_error, tiny_data, tmp_path):
    r = cli('train', '--data', tiny_data, '--epochs', 2, '--bs', 16, '--lr-min', 1e3, '--lr-max', 1e7, '--no-plots', '--out', tmp_path/'r')
    user_error(r, 'loss became', 'at epoch 1/2, iteration', '(LR ', 'lower --lr-max', 'no epoch finished')
    assert not (tmp_path/'r'/'checkpoint.pth').exists() and not (tmp_path/'r'/'model.pth').exists()


class NaNAfter(PlainCrossEntropyLoss):
    "Cross-entropy that turns NaN after `n` training iterations"
    n, calls = N_ITER, 0
    def __call__(self, *args, **kwargs):
        loss = super().__call__(*args, **kwargs)
        if torch.is_grad_enabled(): # training, not validation
            NaNAfter.calls += 1
            if NaNAfter.calls > NaNAfter.n: return loss*float('nan')
        return loss


def test_nan_keeps_last_checkpoint(monkeypatch, tiny_data, tmp_path):
    monkeypatch.setattr(era_s10.learner, 'PlainCrossEntropyLoss', NaNAfter)
    NaNAfter.calls = 0
    code, err = run_main('train', '--data', tiny_data, *SEED_RUN, '--no-plots', '--out', tmp_path/'r')
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith('era-s10: error: loss became nan at epoch 2/4, iteration 1/5 (LR ') and 'lower --lr-max' in err[0], err
    assert f"{tmp_path/'r'/'checkpoint.pth'} keeps epoch 1" in err[0], err
    ck = torch.load(tmp_path/'r'/'checkpoint.pth', weights_only=True)
    assert ck['epoch'] == 0 and all(torch.isfinite(v.float()).all() for v in ck['model'].values())
    assert [r['epoch'] for r in read_csv(tmp_path/'r'/'metrics.csv')] == ['0']
    assert not (tmp_path/'r'/'model.pth').exists()


def test_lr_find_nan_suggests_lrs(monkeypatch, tiny_data, tmp_path):
    monkeypatch.setattr(era_s10.learner, 'PlainCrossEntropyLoss', NaNAfter)
    NaNAfter.calls = 0; monkeypatch.setattr(NaNAfter, 'n', 0) # NaN from the first iteration
    code, err = run_main('train', '--data', tiny_data, '--epochs', 1, '--bs', 16, '--lr-find-its', 20, '--no-plots', '--out', tmp_path/'r')
    assert code == 2 and len(err) == 1, err
    assert 'LR range test diverged or gave NaN' in err[0] and '--lr-min' in err[0] and '--lr-max' in err[0], err


def test_lr_find_exploding_loss(monkeypatch, tiny_data, tmp_path):
    "A loss that explodes at once (so every suggestion falls in the first few iterations) also asks for explicit LRs"
    class Exploding(PlainCrossEntropyLoss):
        def __call__(self, *args, **kwargs):
            Exploding.k = getattr(Exploding, 'k', 0) + 1
            return super().__call__(*args, **kwargs) * (10.**min(Exploding.k, 30))
    monkeypatch.setattr(era_s10.learner, 'PlainCrossEntropyLoss', Exploding)
    code, err = run_main('train', '--data', tiny_data, '--epochs', 1, '--bs', 16, '--lr-find-its', 20, '--no-plots', '--out', tmp_path/'r')
    assert code == 2 and len(err) == 1 and '--lr-min' in err[0] and '--lr-max' in err[0], err


# ---- interrupted runs ----

@pytest.fixture(scope='module')
def reference_run(tiny_data, tmp_path_factory):
    "An uninterrupted 4-epoch run with a fixed seed"
    out = tmp_path_factory.mktemp('ref')/'r'
    r = subprocess.run([*CLI, 'train', '--data', str(tiny_data), *map(str, SEED_RUN), '--no-plots', '--out', str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    return out


def interrupt(tiny_data, out, sig, plots):
    "Start the same run, wait for the checkpoint of its first epoch, then send `sig`"
    args = [*CLI, 'train', '--data', str(tiny_data), *map(str, SEED_RUN), '--out', str(out)] + ([] if plots else ['--no-plots'])
    # A shell without job control starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: give the run the default handling, as in a terminal.
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (out/'checkpoint.pth').exists():
        assert p.poll() is None, p.communicate()
        assert time.time()-t0 < 1200, 'no checkpoint after 20 minutes'
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=600)
    assert not (out/'model.pth').exists(), 'the run finished before it was interrupted'
    return p.returncode, err


def check_resumed(out, ref):
    ep = torch.load(out/'checkpoint.pth', weights_only=True)['epoch']
    r = subprocess.run([*CLI, 'train', '--resume', str(out)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    s = json.loads((out/'summary.json').read_text())
    assert s['resumed_at_epoch'] == ep + 1 and s['epochs_this_process'] == 4 - (ep + 1)
    # the summary still says where the LRs came from, and times every epoch, not only this process's
    assert s['lr_source'] == json.loads((ref/'summary.json').read_text())['lr_source']
    assert s['epochs_seconds'] == pytest.approx(sum(float(r['seconds']) for r in read_csv(out/'metrics.csv')))
    a = torch.load(ref/'model.pth', weights_only=True)
    b = torch.load(out/'model.pth', weights_only=True)
    assert a.keys() == b.keys()
    # Bit-identical: the resumed process restores the weights, the optimizer state and every RNG (Python, numpy, torch,
    # the loader's shuffle), and the CPU kernels are deterministic, so it repeats the uninterrupted run exactly.
    for k in a: assert torch.equal(a[k], b[k]), k
    # one row per epoch and one per iteration overall, the same as the uninterrupted run
    m, mr = read_csv(out/'metrics.csv'), read_csv(ref/'metrics.csv')
    assert [r['epoch'] for r in m] == ['0', '1', '2', '3'] and all(r['train_loss'] and r['accuracy'] for r in m)
    assert [(r['train_loss'], r['valid_loss'], r['accuracy']) for r in m] == [(r['train_loss'], r['valid_loss'], r['accuracy']) for r in mr]
    sc, sr = read_csv(out/'schedule.csv'), read_csv(ref/'schedule.csv')
    assert [int(r['iteration']) for r in sc] == list(range(4*N_ITER))
    assert sc == sr
    return s


def test_sigint_then_resume(reference_run, tiny_data, tmp_path):
    out = tmp_path/'r'
    code, err = interrupt(tiny_data, out, signal.SIGINT, plots=True)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == f'era-s10: interrupted; the last finished epoch is saved: continue with era-s10 train --resume {out}', err
    assert 'Traceback' not in err
    check_resumed(out, reference_run)
    for f in ('samples.png', 'augmented.png', 'schedule.png', 'learning_curves.png', 'confusion_matrix.png'): assert (out/f).exists(), f


def test_sigkill_then_resume(reference_run, tiny_data, tmp_path):
    out = tmp_path/'r'
    code, _ = interrupt(tiny_data, out, signal.SIGKILL, plots=False)
    assert code == -signal.SIGKILL
    check_resumed(out, reference_run)


def test_sigterm_then_resume(reference_run, tiny_data, tmp_path):
    "SIGTERM (timeout, batch schedulers, container stops) ends the run like Ctrl-C, with the shell's status for it"
    out = tmp_path/'r'
    code, err = interrupt(tiny_data, out, signal.SIGTERM, plots=False)
    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == f'era-s10: interrupted; the last finished epoch is saved: continue with era-s10 train --resume {out}', err
    assert 'Traceback' not in err
    check_resumed(out, reference_run)


def test_resume_finished_run(reference_run):
    before = {f.name: f.stat().st_mtime_ns for f in reference_run.iterdir()}
    r = subprocess.run([*CLI, 'train', '--resume', str(reference_run)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    assert r.stdout.strip().splitlines() == [f"era-s10: run {reference_run} is complete (4 of 4 epochs): its results are in {reference_run/'summary.json'}"], r.stdout
    assert {f.name: f.stat().st_mtime_ns for f in reference_run.iterdir()} == before # nothing rewritten
