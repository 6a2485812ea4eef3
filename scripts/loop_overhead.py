"""Python work per training batch of fastai's loop, on the CPU: function calls per batch (cProfile) of a bare loop, of
`learn.fit` as `era-s10 bench` times it, and of the callbacks, schedule and progress bar `era-s10 train` adds, with a
model that costs almost nothing and no augmentation; then of the training loader alone, with and without the
augmentation, 16 batches at a time (the GPU default `chunk` at bs 512) or one at a time, and its time per batch at bs 2
(where it is all Python and dispatch, the host's part of a GPU batch); then the time per call of the
one-cycle schedule (fastai's `combine_scheds` as `fit_one_cycle` builds it, against `combine_scheds_float`), of
`TorchOpt.hypers`, of handing the model a batch already on its device (fastai's `Learner._set_device` against
`CifarLearner`'s), and of an epoch's shuffle of 45,000 images (fastai's against `ArrayDL.get_idxs`); last, the training
loader's batches/s at bs 512 on the CPU with the augmentation called per batch (`chunk=0`, the CPU default) or per
chunk of 2,048 or 8,192 images (the GPU default), 3 interleaved rounds of an epoch each.
Usage:   python scripts/loop_overhead.py [STEPS]"""
import cProfile, contextlib, os, pstats, statistics, sys, tempfile, time, timeit
from pathlib import Path
import numpy as np, torch
from fastai.callback.schedule import combined_cos, SchedCos
from fastai.callback.progress import CSVLogger
import era_s10.bench as B
from fastai.data.load import DataLoader
from fastai.learner import Learner
from era_s10.data import make_cifar_folder, cifar10_dls, _array_dls
from era_s10.learner import cifar_learner, fit_one_cycle_s10, combine_scheds_float, NaNGuard
from era_s10.train import EpochTimer, StopOnSignal, ScheduleLog

steps, tmp = int(sys.argv[1]) if len(sys.argv) > 1 else 200, Path(tempfile.mkdtemp())
torch.set_num_threads(1)
# chunks of 16 batches, as the GPU default `chunk` (8,192 images) gives at bs 512
dls = cifar10_dls(make_cifar_folder(tmp/'c', n_per_class=120), bs=2, device='cpu', batch_tfms=[], chunk=32)
def model(): return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10, bias=False))

def fit(n, train=False):
    learn = cifar_learner(dls, path=tmp, model=model(), precision='fp32', cbs=[EpochTimer(), NaNGuard(), StopOnSignal()] if train else None)
    cbs = [B.FitTimer(warm=5, n=n)] + ([CSVLogger(tmp/'m.csv'), ScheduleLog(tmp/'s.csv')] if train else [])
    with (contextlib.redirect_stdout(None) if train else learn.no_bar()), learn.no_logging():
        if train: fit_one_cycle_s10(learn, 10**4, 1e-4, 1e-3, cbs=cbs)
        else: learn.fit(10**4, 1e-3, cbs=cbs)

def calls(f, n):
    p = cProfile.Profile(); p.enable(); f(n); p.disable(); return pstats.Stats(p).total_calls
per_batch = lambda f: (calls(f, 2*steps) - calls(f, steps))/steps # the difference leaves out the set-up
bare = B.bare_loop(loader=dls.train, model=model(), precision='fp32', warm=3)
print(f"Python calls per training batch: bare loop {per_batch(bare):.0f}, learn.fit {per_batch(fit):.0f}, "
      f"with era-s10 train's callbacks and schedule {per_batch(lambda n: fit(n, True)):.0f}")

aug, aug1 = [cifar10_dls(tmp/'c', bs=2, device='cpu', chunk=c) for c in (32, 0)] # the training augmentation of `cifar_batch_tfms`
def batches(d):
    def f(n):
        it = iter(d.train)
        for _ in range(n): next(it)
    return f
print(f"Python calls per batch of the training loader alone: {per_batch(batches(aug)):.0f} with the augmentation, "
      f"{per_batch(batches(dls)):.0f} without; {per_batch(batches(aug1)):.0f} with the augmentation called once per batch (chunk=0)")
def pass_rate(dl): # batches/s of one whole pass of `dl` (its shuffle and every chunk included)
    t = time.perf_counter(); k = sum(1 for _ in dl)
    return k/(time.perf_counter()-t)
pass_ms = lambda d: 1e3/max(pass_rate(d.train) for _ in range(5)) # best of 5: at bs 2 the arithmetic is negligible, so this is the host's work
print(f"time per batch of the training loader alone, bs 2, with the augmentation: {pass_ms(aug):.3f} ms in 16-batch chunks, "
      f"{pass_ms(aug1):.3f} ms called once per batch")

us = lambda f: min(timeit.repeat(f, number=2000, repeat=3))/2000*1e6
fastai_lr = combined_cos(5/24, np.array([1e-4]*2), np.array([1e-3]*2), np.array([1e-4]*2)) # as `fit_one_cycle` builds it
ours = combine_scheds_float([5/24, 19/24], [SchedCos(1e-4, 1e-3), SchedCos(1e-3, 1e-4)])
print(f"one-cycle LR per call: fastai combined_cos with fit_one_cycle's arrays {us(lambda: fastai_lr(0.4)):.1f} us, "
      f"combine_scheds_float {us(lambda: ours(0.4)):.1f} us")
learn = cifar_learner(dls, path=tmp, model=model(), precision='fp32'); learn.create_opt()
print(f"TorchOpt.hypers: {us(lambda: learn.opt.hypers):.2f} us cached, "
      f"{us(lambda: (learn.opt.__dict__.__setitem__('_hypers', None), learn.opt.hypers)):.2f} us rebuilt")
def ncalls(f): p = cProfile.Profile(); p.enable(); f(); p.disable(); return pstats.Stats(p).total_calls
b = next(iter(dls.train)) # a `TensorImage` and a `TensorCategory`, already on the model's device
fastai_dev, ours_dev = lambda: Learner._set_device(learn, b), lambda: learn._set_device(b)
print(f"a batch on the model's device, per batch: fastai's Learner._set_device {us(fastai_dev):.1f} us, {ncalls(fastai_dev)} Python calls; "
      f"CifarLearner's {us(ours_dev):.1f} us, {ncalls(ours_dev)} calls")

n = 45_000 # the training images of the default experiment
big = _array_dls(np.zeros((n,3,32,32), np.uint8), np.zeros(n, np.int64), list(range(n)), lambda o: (list(range(n)), [0]), 512, 'cpu', tmp).train
# fastai's: `DataLoader.get_idxs` (`random.sample` of the items), `DataLoader.sample`'s generator, then a tensor of them
fastai_shuffle = lambda: torch.as_tensor([b for i,b in enumerate(DataLoader.get_idxs(big)) if i//big.bs % big.num_workers == big.offs])
ms = lambda f: min(timeit.repeat(f, number=5, repeat=3))/5*1e3
print(f"shuffle at an epoch's start, {n:,} images: fastai's {ms(fastai_shuffle):.1f} ms, ArrayDL.get_idxs {ms(big.get_idxs):.2f} ms")

torch.set_num_threads(os.cpu_count()) # the loader's arithmetic uses every core, as in a run
rnd = np.random.default_rng(0)
xs, ys = rnd.integers(0, 256, (50_000,3,32,32), dtype=np.uint8), rnd.integers(0, 10, 50_000)
def epoch_rate(c):
    return pass_rate(_array_dls(xs, ys, list(range(len(ys))), lambda o: (list(range(n)), list(range(n, len(ys)))), 512, 'cpu', tmp, chunk=c).train)
rates = {c: [] for c in (0, 2048, 8192)}
for _ in range(3):
    for c in rates: rates[c].append(epoch_rate(c))
med = {c: statistics.median(r) for c, r in rates.items()}
print("training loader on the CPU, bs 512, batches/s (median of 3 epochs): " +
      ", ".join(f"chunk={c} {m:.1f} ({m/med[0]:.2f}x)" for c, m in med.items()))
