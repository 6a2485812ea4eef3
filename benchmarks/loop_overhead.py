"""Python work per training batch of fastai's loop, on the CPU.

1. Function calls per batch (cProfile) of a bare loop, of `learn.fit` as `era-s10 bench` times it, and of `learn.fit`
   with the callbacks, schedule and progress bar `era-s10 train` adds, around a model that costs almost nothing and
   with no augmentation.
2. The same for the training loader alone, with and without the augmentation, 16 batches at a time or one at a time,
   and its time per batch at bs 2 (where it is all Python and dispatch: the host's part of a GPU batch).
3. The time per call of the one-cycle schedule (fastai's `combine_scheds` as `fit_one_cycle` builds it, against
   `combine_scheds_float`), of `TorchOpt.hypers`, of handing the model a batch already on its device (fastai's
   `Learner` against `CifarLearner`), and of an epoch's shuffle of 45,000 images (fastai's against `ArrayDL`'s).
4. The training loader's batches/s at bs 512 with the augmentation called per batch (`chunk=0`) or per chunk of 2,048
   or 8,192 images, 3 interleaved rounds of an epoch each.

Usage:   python benchmarks/loop_overhead.py [STEPS]"""
import contextlib, cProfile, os, pstats, statistics, sys, tempfile, time, timeit
from functools import partial
from pathlib import Path
import numpy as np, torch
from fastai.callback.schedule import combined_cos, SchedCos
from fastai.callback.progress import CSVLogger
from fastai.data.load import DataLoader
from fastai.learner import Learner
from era_s10.data import make_cifar_folder, cifar10_dls, array_dls
from era_s10.learner import cifar_learner, fit_one_cycle_s10, combine_scheds_float, NaNGuard
from era_s10.train import EpochTimer, StopOnSignal, ScheduleLog
from era_s10.timing import FitTimer, bare_loop

N_TRAIN = 45_000 # the training images of the default experiment


def tiny():
    "A model that costs almost nothing, so the loop's own work is what is measured"
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10, bias=False))


def fit(dls, tmp, n, train=False):
    "`n` timed batches of `learn.fit`; `train`: with the callbacks and schedule `era-s10 train` adds"
    cbs = [EpochTimer(), NaNGuard(), StopOnSignal()] if train else None
    learn = cifar_learner(dls, path=tmp, model=tiny(), precision='fp32', cbs=cbs)
    fit_cbs = [FitTimer(warm=5, n=n)] + ([CSVLogger(tmp/'m.csv'), ScheduleLog(tmp/'s.csv')] if train else [])
    with (contextlib.redirect_stdout(None) if train else learn.no_bar()), learn.no_logging():
        if train: fit_one_cycle_s10(learn, 10**4, 1e-4, 1e-3, cbs=fit_cbs)
        else: learn.fit(10**4, 1e-3, cbs=fit_cbs)


def calls(f, n):
    "Python function calls of `f(n)`"
    p = cProfile.Profile(); p.enable(); f(n); p.disable()
    return pstats.Stats(p).total_calls


def per_batch(f, steps):
    "Calls per batch of `f`: the difference of two lengths leaves out the set-up"
    return (calls(f, 2*steps) - calls(f, steps))/steps


def take(dls, n):
    it = iter(dls.train)
    for _ in range(n): next(it)


def pass_rate(dl):
    "Batches/s of one whole pass of `dl`, its shuffle and every chunk included"
    t = time.perf_counter(); k = sum(1 for _ in dl)
    return k/(time.perf_counter()-t)


def pass_ms(dls): return 1e3/max(pass_rate(dls.train) for _ in range(5)) # best of 5
def us(f): return min(timeit.repeat(f, number=2000, repeat=3))/2000*1e6
def ms(f): return min(timeit.repeat(f, number=5, repeat=3))/5*1e3


def ncalls(f):
    p = cProfile.Profile(); p.enable(); f(); p.disable()
    return pstats.Stats(p).total_calls


def loop_calls(dls, tmp, steps):
    bare = bare_loop(loader=dls.train, model=tiny(), precision='fp32', warm=3)
    print(f"Python calls per training batch: bare loop {per_batch(bare, steps):.0f}, "
          f"learn.fit {per_batch(partial(fit, dls, tmp), steps):.0f}, with era-s10 train's callbacks and schedule "
          f"{per_batch(partial(fit, dls, tmp, train=True), steps):.0f}")


def loader_calls(dls, tmp, steps):
    # the training augmentation of `cifar_batch_tfms`, 16 batches at a time, or once per batch
    aug, aug1 = [cifar10_dls(tmp/'c', bs=2, device='cpu', chunk=c) for c in (32, 0)]
    print(f"Python calls per batch of the training loader alone: {per_batch(partial(take, aug), steps):.0f} with the "
          f"augmentation, {per_batch(partial(take, dls), steps):.0f} without; "
          f"{per_batch(partial(take, aug1), steps):.0f} with the augmentation called once per batch (chunk=0)")
    print(f"time per batch of the training loader alone, bs 2, with the augmentation: {pass_ms(aug):.3f} ms in "
          f"16-batch chunks, {pass_ms(aug1):.3f} ms called once per batch")


def hypers_rebuilt(learn):
    learn.opt.__dict__['_hypers'] = None # the cache `CifarLearner`'s optimizer keeps
    return learn.opt.hypers


def per_call(dls, tmp):
    lo, hi = np.array([1e-4]*2), np.array([1e-3]*2)
    fastai_lr = combined_cos(5/24, lo, hi, lo) # as `fit_one_cycle` builds it
    ours = combine_scheds_float([5/24, 19/24], [SchedCos(1e-4, 1e-3), SchedCos(1e-3, 1e-4)])
    print(f"one-cycle LR per call: fastai combined_cos with fit_one_cycle's arrays "
          f"{us(partial(fastai_lr, 0.4)):.1f} us, "
          f"combine_scheds_float {us(partial(ours, 0.4)):.1f} us")
    learn = cifar_learner(dls, path=tmp, model=tiny(), precision='fp32'); learn.create_opt()
    print(f"TorchOpt.hypers: {us(lambda: learn.opt.hypers):.2f} us cached, "
          f"{us(partial(hypers_rebuilt, learn)):.2f} us rebuilt")
    b = next(iter(dls.train)) # a `TensorImage` and a `TensorCategory`, already on the model's device
    fastai_dev, ours_dev = partial(Learner._set_device, learn, b), partial(type(learn)._set_device, learn, b)
    print(f"a batch on the model's device, per batch: fastai's Learner {us(fastai_dev):.1f} us, "
          f"{ncalls(fastai_dev)} Python calls; CifarLearner's {us(ours_dev):.1f} us, {ncalls(ours_dev)} calls")


def all_train(n_total, o): return list(range(N_TRAIN)), list(range(N_TRAIN, n_total))


def fastai_shuffle(dl):
    "fastai's: `DataLoader.get_idxs` (`random.sample` of the items), `DataLoader.sample`'s generator, then a tensor"
    return torch.as_tensor([b for i,b in enumerate(DataLoader.get_idxs(dl)) if i//dl.bs % dl.num_workers == dl.offs])


def shuffle_time(tmp):
    n = N_TRAIN
    big = array_dls(np.zeros((n,3,32,32), np.uint8), np.zeros(n, np.int64), list(range(n)), partial(all_train, n),
                    bs=512, device='cpu', path=tmp).train
    print(f"shuffle at an epoch's start, {n:,} images: fastai's {ms(partial(fastai_shuffle, big)):.1f} ms, "
          f"ArrayDL.get_idxs {ms(big.get_idxs):.2f} ms")


def chunk_rates(tmp):
    torch.set_num_threads(os.cpu_count()) # the loader's arithmetic uses every core, as in a run
    rnd = np.random.default_rng(0)
    xs, ys = rnd.integers(0, 256, (50_000,3,32,32), dtype=np.uint8), rnd.integers(0, 10, 50_000)
    rates = {c: [] for c in (0, 2048, 8192)}
    for _ in range(3):
        for c in rates:
            dl = array_dls(xs, ys, list(range(len(ys))), partial(all_train, len(ys)), bs=512, device='cpu', path=tmp,
                           chunk=c).train
            rates[c].append(pass_rate(dl))
    med = {c: statistics.median(r) for c, r in rates.items()}
    print("training loader on the CPU, bs 512, batches/s (median of 3 epochs): " +
          ", ".join(f"chunk={c} {m:.1f} ({m/med[0]:.2f}x)" for c, m in med.items()))


if __name__ == '__main__':
    steps, tmp = int(sys.argv[1]) if len(sys.argv) > 1 else 200, Path(tempfile.mkdtemp())
    torch.set_num_threads(1)
    # chunks of 16 batches, as the GPU default `chunk` (8,192 images) gives at bs 512
    dls = cifar10_dls(make_cifar_folder(tmp/'c', n_per_class=120), bs=2, device='cpu', batch_tfms=[], chunk=32)
    loop_calls(dls, tmp, steps)
    loader_calls(dls, tmp, steps)
    per_call(dls, tmp)
    shuffle_time(tmp)
    chunk_rates(tmp)
