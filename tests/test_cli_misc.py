"""The command line without the real data: help, a tiny run with a relative --out then evaluate and predict on it,
--compile reaching the model, the bench dispatch, and one-line warnings."""
import json, subprocess, sys, types
import pytest, torch
from era_s10.cli import main, _show_warning
from era_s10.data import CIFAR10_CLASSES


def test_help(cli):
    r = cli('--help')
    assert r.returncode == 0 and all(c in r.stdout for c in ('train', 'evaluate', 'predict', 'export', 'report', 'bench')), r.stdout
    r = cli('train', '--help')
    assert r.returncode == 0 and '--compile' in r.stdout and '--resume' in r.stdout and '--strict' in r.stdout
    r = cli('predict', '--help')
    assert r.returncode == 0 and '--csv FILE' in r.stdout and '(default: 512)' in r.stdout, r.stdout
    r = cli('bench', '--help')
    assert r.returncode == 0 and all(o in r.stdout for o in ('--data', '--out', '--quick'))


def test_help_and_option_errors_need_no_torch():
    "`--help` and a bad option are answered before torch, fastai or Optuna is imported (torch alone takes seconds)"
    code = ("import sys\nfrom era_s10.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['sweep', '--help'], ['train', '--bs', '0'],\n"
            "             ['train', '--lr-min', '1e-3', '--lr-max', '1e-4'], ['train', '--recipe', 'nope']):\n"
            "    try: main(argv)\n    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'fastai', 'optuna') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == '[]', r.stdout[-2000:] + r.stderr
    assert r.stderr.count('era-s10: error: ') == 3 and 'Traceback' not in r.stderr, r.stderr

def test_relative_out_then_evaluate_and_predict(cli, tiny_data, tmp_path):
    r = cli('train', '--data', tiny_data, '--epochs', 2, '--bs', 16, '--lr-find-its', 10, '--device', 'cpu', '--out', 'runs/r', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rd = tmp_path/'runs'/'r'
    s = json.loads((rd/'summary.json').read_text())
    assert s['lr_source'].startswith('lr_find (10 iterations)') and (rd/'lr_find.png').exists()
    assert len((rd/'metrics.csv').read_text().splitlines()) == 3
    r = cli('evaluate', 'runs/r', '--tta', '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['accuracy'] == pytest.approx(s['valid_accuracy'], abs=1e-6) and res['accuracy_tta'] == pytest.approx(s['valid_accuracy_tta'], abs=1e-6)
    imgs = sorted((tiny_data/'train'/'frog').iterdir())[:2]
    r = cli('predict', rd, *imgs)
    assert r.returncode == 0, r.stderr
    out = [l.split('\t') for l in r.stdout.strip().splitlines()]
    assert [o[0] for o in out] == [str(f) for f in imgs] and all(o[1] in CIFAR10_CLASSES and 0 < float(o[2]) <= 1 for o in out)
    # `report` rewrites the summary and the plots from the folder alone, with the same figures
    (rd/'learning_curves.png').unlink()
    r = cli('report', 'runs/r', '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    s2 = json.loads((rd/'summary.json').read_text())
    keys = ('valid_accuracy', 'valid_accuracy_tta', 'valid_loss', 'epochs_seconds', 'train_images_per_s', 'seconds', 'settings', 'lr_source')
    assert {k: s2[k] for k in keys} == {k: s[k] for k in keys}
    assert (rd/'learning_curves.png').exists()


def test_lr_div(cli, user_error, tiny_data, tmp_path):
    "`--lr-div` reaches the LR rule (LRMIN = LRMAX/DIV, LRMAX from the LR finder), and a resume cannot change it"
    r = cli('train', '--data', tiny_data, '--epochs', 1, '--bs', 16, '--lr-find-its', 20, '--lr-div', 100, '--no-plots', '--device', 'cpu', '--out', tmp_path/'r')
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path/'r'/'summary.json').read_text())
    assert s['settings']['lr_min'] == pytest.approx(s['settings']['lr_max']/100) and s['lr_source'].endswith('LRMIN = LRMAX/100')
    user_error(cli('train', '--resume', tmp_path/'r', '--lr-div', 10), 'with the settings in its config.json', 'drop --lr-div')


def test_report_needs_a_finished_run(cli, user_error, tmp_path):
    user_error(cli('report', tmp_path), 'holds no model.pth', 'resume it first')


def test_compile_reaches_the_model(monkeypatch, tiny_data, tmp_path):
    "--compile compiles the model in place (the compile itself is replaced: it takes minutes on a CPU)"
    calls = []
    monkeypatch.setattr(torch.nn.Module, 'compile', lambda self, *a, **k: calls.append(type(self).__name__))
    main(['train', '--data', str(tiny_data), '--epochs', '1', '--bs', '16', '--lr-min', '1e-4', '--lr-max', '1e-3',
          '--no-plots', '--compile', '--device', 'cpu', '--out', str(tmp_path/'r')])
    assert calls == ['CustomResNet']
    assert json.loads((tmp_path/'r'/'summary.json').read_text())['compile'] is True


def test_compile_mode(monkeypatch, tiny_data, tmp_path, cli, user_error):
    "--compile MODE reaches `Module.compile`; an unknown mode is a one-line error"
    modes = []
    monkeypatch.setattr(torch.nn.Module, 'compile', lambda self, *a, **k: modes.append(k.get('mode')))
    main(['train', '--data', str(tiny_data), '--epochs', '1', '--bs', '16', '--lr-min', '1e-4', '--lr-max', '1e-3',
          '--no-plots', '--compile', 'max-autotune-no-cudagraphs', '--device', 'cpu', '--out', str(tmp_path/'r')])
    assert modes == ['max-autotune-no-cudagraphs']
    user_error(cli('train', '--data', tiny_data, '--compile', 'fast', '--out', tmp_path/'r2'), "unknown torch.compile mode 'fast'", 'use none, auto')


def test_compile_off_by_default(monkeypatch, tiny_data, tmp_path):
    "`cifar_learner` and `era-s10 train` compile only when asked"
    from era_s10.learner import cifar_learner
    from era_s10.data import cifar10_dls
    calls = []
    monkeypatch.setattr(torch.nn.Module, 'compile', lambda self, *a, **k: calls.append(1))
    dls = cifar10_dls(tiny_data, bs=16, device='cpu')
    cifar_learner(dls, path=tmp_path)
    assert calls == []
    main(['train', '--data', str(tiny_data), '--epochs', '1', '--bs', '16', '--lr-min', '1e-4', '--lr-max', '1e-3',
          '--no-plots', '--device', 'cpu', '--out', str(tmp_path/'r')])
    assert calls == [] and json.loads((tmp_path/'r'/'summary.json').read_text())['compile'] is False
    learn = cifar_learner(dls, path=tmp_path, compile=True)
    assert calls == [1] and not any(k.startswith('_orig_mod') for k in learn.model.state_dict())


def test_bench_dispatch(monkeypatch, tmp_path, capsys):
    got = {}
    fake = types.ModuleType('era_s10.bench')
    def run_bench(**kwargs): got.update(kwargs); return {'ok': 1}
    fake.run_bench = run_bench
    monkeypatch.setitem(sys.modules, 'era_s10.bench', fake)
    main(['bench', '--data', str(tmp_path), '--out', str(tmp_path/'b.json'), '--quick'])
    assert got == dict(data=str(tmp_path), out=str(tmp_path/'b.json'), quick=True, compile_modes=None, loaders=True)
    assert str(tmp_path/'b.json') in capsys.readouterr().out
    got.clear(); main(['bench'])
    assert got == dict(data=None, out=None, quick=False, compile_modes=None, loaders=True)
    got.clear(); main(['bench', '--no-loaders', '--compile', 'default, reduce-overhead'])
    assert got == dict(data=None, out=None, quick=False, compile_modes=['default', 'reduce-overhead'], loaders=False)
    got.clear(); main(['bench', '--compile', 'none'])
    assert got['compile_modes'] == ['none']
    got.clear(); capsys.readouterr()
    with pytest.raises(SystemExit) as e: main(['bench', '--compile', 'fast'])
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and not got and len(err) == 1 and "unknown torch.compile mode 'fast'" in err[0], err


def test_warnings_are_one_line(capsys):
    _show_warning(UserWarning('3 unreadable image file(s) in /d/train: a.png,\nb.png'), UserWarning, '/x/era_s10/data.py', 10)
    _show_warning(RuntimeWarning('something\nhappened'), RuntimeWarning, '/site-packages/torch/x.py', 5)
    err = capsys.readouterr().err.splitlines()
    assert err == ['era-s10: warning: 3 unreadable image file(s) in /d/train: a.png, b.png',
                   'era-s10: warning: something happened (RuntimeWarning from x.py:5)']


def test_train_help_lists_every_setting():
    "`era-s10 train --help` has one option per `RunConfig` field, with the field's comment and its default"
    from dataclasses import fields
    from fastcore.docments import docments
    from era_s10.cli import make_parser, _Help
    from era_s10.config import RunConfig, _default_text
    sp = make_parser()._subparsers._group_actions[0].choices['train']
    sp.formatter_class = lambda prog: _Help(prog, width=1000) # one line per option, so each help reads whole
    h, docs = sp.format_help(), docments(RunConfig)
    for f in fields(RunConfig):
        opt = ('--no-' if f.default is True else '--') + f.name.replace('_', '-')
        doc = docs[f.name] if '(default:' in docs[f.name] else f'{docs[f.name]} {_default_text(f.name)}'
        assert f'{opt}' in h and ' '.join(doc.split()) in h, (f.name, doc)
    assert '(default: 24)' in h and '(default: 0.5; seed: 0.0001)' in h and '(default: runs/run)' in h
