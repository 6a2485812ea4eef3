"""The training loop (issue: `learn.fit` at the bare loop's speed): aten ops per training step against a bare PyTorch
loop, plain tensors into the model, and, on CUDA only, no host sync inside a training batch."""
import collections, math
import pytest, torch, torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from fastai.callback.core import Callback
from fastai.optimizer import Adam
from era_s10.data import make_cifar_folder, cifar10_dls
from era_s10.learner import cifar_learner, NaNGuard, adamw, norm_bias_groups, fit_one_cycle_s10
from era_s10.model import CustomResNet
from era_s10.train import EpochTimer, ScheduleLog


class CountOps(TorchDispatchMode):
    "Count the aten ops dispatched while active"
    def __init__(self): super().__init__(); self.n, self.ops = 0, collections.Counter()
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1; self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


class OpsPerStep(Callback):
    "Count aten ops from the batch's arrival at the model (after every `before_batch`) to the end of the optimizer step"
    order = 1000
    def before_fit(self): self.counts, self.mode = [], None
    def before_batch(self):
        if self.training: self.mode = CountOps(); self.mode.__enter__()
    def after_step(self):
        self.mode.__exit__(None, None, None); self.counts.append(self.mode.n); self.mode = None


@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    return cifar10_dls(make_cifar_folder(tmp_path_factory.mktemp('loop')/'c', n_per_class=10), bs=16, device='cpu')


def fit_ops(dls, tmp, **kw):
    "Median aten ops per training step of `learn.fit`, with the callbacks `train_run` adds"
    learn = cifar_learner(dls, path=tmp, precision='fp32', cbs=[EpochTimer(), NaNGuard(), ScheduleLog(tmp/'schedule.csv')], **kw)
    oc = OpsPerStep()
    with learn.no_bar(), learn.no_logging(): fit_one_cycle_s10(learn, 1, 1e-4, 1e-3, cbs=oc) # the experiment's schedule
    return sorted(oc.counts[1:])[len(oc.counts[1:])//2] # the first step also creates the optimizer state


def bare_ops(dls):
    "Aten ops per step of a bare loop: the same model, loss and optimizer, from the model call to the end of the step"
    model = CustomResNet().to(memory_format=torch.channels_last).train()
    opt = adamw(norm_bias_groups(model))
    x, y = (t.as_subclass(torch.Tensor) for t in dls.one_batch())
    counts = []
    for _ in range(3):
        opt.zero_grad()
        with CountOps() as m:
            F.cross_entropy(model(x), y, label_smoothing=0.2).backward(); opt.step()
        counts.append(m.n)
    return counts[-1]


def test_ops_per_step(dls, tmp_path):
    fit, bare = fit_ops(dls, tmp_path), bare_ops(dls)
    print(f'aten ops per training step: learn.fit {fit}, bare loop {bare}, ratio {fit/bare:.3f}')
    assert fit <= 1.25*bare, (fit, bare)
    # the check can fail: fastai's own `Adam` (a Python loop of small ops per parameter) is far over the bound
    assert fit_ops(dls, tmp_path, opt_func=Adam) > 1.25*bare


def test_model_gets_plain_tensors(dls, tmp_path):
    learn = cifar_learner(dls, path=tmp_path, precision='fp32')
    seen = []
    learn.model.register_forward_pre_hook(lambda m, args: seen.append(type(args[0])))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert seen and all(t is torch.Tensor for t in seen), set(seen)


class SyncIsError(Callback):
    "Any host sync is an error from the start of a training batch (first `before_batch`)..."
    order = -1000
    def before_batch(self):
        if self.training: torch.cuda.set_sync_debug_mode('error')


class SyncAllowed(Callback):
    "...to its end (last `after_batch`), so every callback's batch work runs under 'error'"
    order = 1000
    def after_batch(self): torch.cuda.set_sync_debug_mode('default')
    def after_cancel_batch(self): torch.cuda.set_sync_debug_mode('default')


def fit_under_sync_error(tmp_path, allowed:Callback, **kwargs):
    "Two epochs of `era-s10 train`'s callbacks on CUDA, host syncs an error from each first training batch until `allowed` resets the mode"
    d = cifar10_dls(make_cifar_folder(tmp_path/'c', n_per_class=60), bs=64, device='cuda', **kwargs)
    learn = cifar_learner(d, path=tmp_path, cbs=[EpochTimer(), NaNGuard(every=10**9), ScheduleLog(tmp_path/'s.csv')])
    learn.sync_free_loss.every = math.inf # the progress bar's once-a-second read is allowed; take it out here
    try:
        with learn.no_bar(), learn.no_logging(): fit_one_cycle_s10(learn, 2, 1e-4, 1e-3, cbs=[SyncIsError(), allowed])
    finally: torch.cuda.set_sync_debug_mode('default')
    return d


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA: checks that no training batch waits for the GPU')
def test_no_sync_in_cuda_batch(tmp_path): fit_under_sync_error(tmp_path, SyncAllowed())


class SyncAllowedAfterTrain(Callback):
    "...to the end of the epoch's training: first at `after_train`, where `EpochTimer` and the `Recorder` read the GPU"
    order = -1001
    def after_train(self): torch.cuda.set_sync_debug_mode('default')
    def after_cancel_train(self): torch.cuda.set_sync_debug_mode('default')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA: checks that the loader does not wait for the GPU between training batches')
def test_no_sync_between_cuda_batches(tmp_path):
    "No host sync from the first training batch to the epoch's end, the loader's work between batches included: with `chunk=128` at bs 64 it augments a new chunk every 2 batches"
    d = fit_under_sync_error(tmp_path, SyncAllowedAfterTrain(), chunk=128)
    assert len(d.train) >= 6 # so that the window held at least two chunk boundaries


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs (`compile='auto'` there)")
def test_cuda_graphs_match_eager(tmp_path):
    "A fit through CUDA graphs (`compile='auto'` on CUDA) predicts what the same weights predict eagerly"
    d = cifar10_dls(make_cifar_folder(tmp_path/'c', n_per_class=60), bs=64, device='cuda')
    learn = cifar_learner(d, path=tmp_path, compile='auto')
    assert learn.compile_mode == 'reduce-overhead'
    with learn.no_bar(), learn.no_logging(): fit_one_cycle_s10(learn, 2, 1e-4, 1e-3)
    probs, targs = learn.get_preds()
    eager = CustomResNet().cuda().to(memory_format=torch.channels_last).eval()
    eager.load_state_dict(learn.model.state_dict())
    x = torch.cat([b[0].as_subclass(torch.Tensor) for b in d.valid])
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16): pe = eager(x).float().softmax(1).cpu()
    assert len(probs) == len(pe) == len(targs)
    assert (probs.argmax(1) == pe.argmax(1)).float().mean() >= 0.95 and (probs - pe).abs().max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs (`compile='auto'` there)")
def test_cuda_graphs_train_run(tmp_path):
    "`train_run(compile='auto')` on CUDA compiles the validation batches before the first epoch and finishes the run"
    from era_s10.train import train_run
    s = train_run(make_cifar_folder(tmp_path/'c', n_per_class=60), out=tmp_path/'r', epochs=2, bs=64, lr_find_its=20,
                  device='cuda', plots=False, quiet=True, compile='auto')
    assert s['compile'] == 'reduce-overhead' and s['compile_seconds'] > 0
    assert math.isfinite(s['valid_loss']) and 0 <= s['valid_accuracy'] <= 1 and s['epochs_seconds'] < s['seconds']
