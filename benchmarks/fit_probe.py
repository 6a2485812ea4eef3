"""Where a training step's time goes under `learn.fit`, against the bare loop on the same loader.

Rates of `cifar_learner`'s Learner as `era-s10 bench` times it, of it with the callbacks, schedule and progress bar of
`era-s10 train`, and of the bare loop, interleaved; then, from `torch.profiler` over the timed steps only, each side's
wall time, GPU busy time, host syncs and costliest CPU ops per step; and on CUDA the Python lines that sync inside a
training batch (`torch.cuda.set_sync_debug_mode('warn')`).

Usage (best on a GPU):   python benchmarks/fit_probe.py DATA [STEPS] [BS]"""
import collections, contextlib, statistics, sys, tempfile, time, warnings
from functools import partial
from pathlib import Path
import torch
from torch.profiler import profile, ProfilerActivity
from fastai.callback.core import Callback
from fastai.callback.progress import CSVLogger
from era_s10.data import cifar10_dls
from era_s10.learner import cifar_learner, pick_precision, fit_one_cycle_s10, NaNGuard
from era_s10.train import EpochTimer, ScheduleLog, StopOnSignal
from era_s10.timing import bare_loop, FitTimer, interleaved

WARM = 3 # untimed batches before each timed window
SYNCS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'cudaMemcpyAsync',
         'aten::_local_scalar_dense')


class Window(Callback):
    "Run `start` before the first timed batch (after `FitTimer`'s warm ones) and `stop` when the fit ends"
    order = -1001
    def __init__(self, start, stop): self.start, self.stop, self.seen = start, stop, 0
    def before_batch(self):
        if self.learn.training and self.seen == WARM: self.start()
        self.seen += self.learn.training
    def after_fit(self): self.stop()


class Probe:
    "The data, the loops and the profiler runs of one probe"
    def __init__(self, data, steps:int, bs:int):
        self.dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        self.cuda, self.tmp, self.steps, self.bs = self.dev.type == 'cuda', Path(tempfile.mkdtemp()), steps, bs
        self.dls, self.prec = cifar10_dls(data, bs=bs, device=self.dev), pick_precision(self.dev)
        torch.backends.cudnn.benchmark = True # as `era-s10 train` and `era-s10 bench` run on CUDA
        self.bare = bare_loop(loader=self.dls.train, precision=self.prec, channels_last=True, warm=WARM)

    def fit(self, n=None, cbs=(), train=False):
        "Training images/s of `learn.fit` as `era-s10 bench` times it; `train`: with what `era-s10 train` adds"
        extra_cbs = [EpochTimer(), NaNGuard(), StopOnSignal()] if train else None
        learn = cifar_learner(self.dls, path=self.tmp, cbs=extra_cbs)
        t = FitTimer(warm=WARM, n=n or self.steps)
        if not train:
            with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=[t, *cbs])
            return t.images_per_s
        logs = [CSVLogger(self.tmp/'metrics.csv'), ScheduleLog(self.tmp/'schedule.csv')]
        with contextlib.redirect_stdout(None): fit_one_cycle_s10(learn, 2, 1e-4, 1e-3, cbs=[t, *cbs, *logs])
        return t.images_per_s

    def rates(self):
        rounds = interleaved(dict(fit=self.fit, train_cfg=partial(self.fit, train=True),
                                  bare=partial(self.bare, self.steps)), 5)
        ms = {k: [1000*self.bs/r for r in v] for k, v in rounds.items()}
        dev = torch.cuda.get_device_name() if self.cuda else 'CPU'
        print(f"{dev}, {self.prec}, bs {self.bs}, {self.steps} steps x 5 rounds; ms per step (median):")
        for k, v in ms.items(): print(f"  {k:16s} {statistics.median(v):7.2f}   rounds {[round(o, 2) for o in v]}")
        ratios = {k: statistics.median(b/a for a, b in zip(ms[k], ms['bare'])) for k in ('fit', 'train_cfg')}
        print("  img/s against the bare loop, median of the rounds' ratios:",
              *(f"{k} {r:.3f}x" for k, r in ratios.items()))

    def _sync(self):
        if self.cuda: torch.cuda.synchronize()

    def prof(self, name, run):
        "Profile the training steps of `run(start, stop)`, which calls `start` and `stop` around them"
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        p, t, n = profile(activities=acts), {}, self.steps
        def start(): self._sync(); t[0] = time.perf_counter(); p.start()
        def stop(): self._sync(); p.stop(); t[1] = time.perf_counter()
        run(start, stop)
        ka = {e.key: e for e in p.key_averages()}
        gpu = sum(dev_time(e) for e in ka.values())/n/1000
        kern = sum(e.count for e in ka.values() if dev_time(e) > 0)/n
        bf = sum(dev_time(e) for k, e in ka.items() if 'bf16' in k.lower() or 'bfloat16' in k.lower())
        bf /= max(1e-9, n*1000*gpu)
        sy = ', '.join(f'{k} {ka[k].count/n:.2f}' for k in SYNCS if k in ka)
        print(f"{name}: {1000*(t[1] - t[0])/n:.2f} ms/step wall under the profiler, GPU busy {gpu:.2f} ms/step, "
              f"{kern:.0f} kernels/step, {100*bf:.0f}% of GPU time in kernels named bf16; per step: {sy}")
        return ka

    def fit_window(self, start, stop, train=False): self.fit(cbs=[Window(start, stop)], train=train)
    def bare_window(self, start, stop): start(); self.bare(self.steps); stop()


def dev_time(e): return getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)


def costliest(kt, kf, kb, steps):
    print("costliest CPU ops of the train config per step (self CPU us, calls; learn.fit's and the bare loop's "
          "beside it):")
    def cpu(ka, k): return ka[k].self_cpu_time_total/steps if k in ka else 0
    for k, e in sorted(kt.items(), key=lambda o: -o[1].self_cpu_time_total)[:18]:
        print(f"  {k[:56]:56s} {cpu(kt, k):8.1f} x{e.count/steps:5.1f}   fit {cpu(kf, k):8.1f}   "
              f"bare {cpu(kb, k):8.1f}")


class Warn(Callback):
    "Host syncs warn from a training batch's start..."
    order = -1000
    def before_batch(self):
        if self.training: torch.cuda.set_sync_debug_mode('warn')


class Default(Callback):
    "...to its end"
    order = 1000
    def after_batch(self): torch.cuda.set_sync_debug_mode('default')


def sync_lines(probe):
    "Which Python lines sync inside a training batch, on CUDA"
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        try: probe.fit(n=5, cbs=[Warn(), Default()], train=True)
        finally: torch.cuda.set_sync_debug_mode('default')
    where = collections.Counter(f"{w.filename}:{w.lineno}" for w in ws if 'synchroniz' in str(w.message))
    print(f"syncs inside 8 training batches: {sum(where.values())}", *(f"  {v} x {k}" for k, v in where.most_common(8)),
          sep='\n')


if __name__ == '__main__':
    args = sys.argv[1:]
    probe = Probe(args[0], int(args[1]) if len(args) > 1 else 30, int(args[2]) if len(args) > 2 else 512)
    probe.rates()
    kf = probe.prof('learn.fit', probe.fit_window)
    kt = probe.prof('train config', partial(probe.fit_window, train=True))
    kb = probe.prof('bare loop', probe.bare_window)
    costliest(kt, kf, kb, probe.steps)
    if probe.cuda: sync_lines(probe)
