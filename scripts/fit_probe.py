"""Where a training step's time goes under `learn.fit`, against the bare loop on the same loader (`era_s10.bench`):
rates of `cifar_learner`'s Learner as `era-s10 bench` times it, of it with the callbacks, schedule and progress bar
of `era-s10 train`, and of the bare loop, interleaved; then, from `torch.profiler` over the timed steps only, each
side's wall time, GPU busy time, host syncs and costliest CPU ops per step; and on CUDA the Python lines that sync
inside a training batch (`torch.cuda.set_sync_debug_mode('warn')`).
Usage (on the GPU machine, after `source .gpu/setup.sh`):   python scripts/fit_probe.py DATA [STEPS] [BS]"""
import collections, contextlib, statistics, sys, tempfile, time, warnings
from pathlib import Path
import torch
from torch.profiler import profile, ProfilerActivity
from fastai.callback.core import Callback
from fastai.callback.progress import CSVLogger
from era_s10.data import cifar10_dls
from era_s10.learner import cifar_learner, pick_precision, fit_one_cycle_s10, NaNGuard
from era_s10.train import EpochTimer, ScheduleLog, StopOnSignal
from era_s10.bench import bare_loop, FitTimer, interleaved

data, steps, bs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30, int(sys.argv[3]) if len(sys.argv) > 3 else 512
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
cuda, tmp, warm = dev.type == 'cuda', tempfile.mkdtemp(), 3
dls = cifar10_dls(data, bs=bs, device=dev)
prec = pick_precision(dev)
SYNCS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'cudaMemcpyAsync', 'aten::_local_scalar_dense')

class Window(Callback):
    "Run `start` before the first timed batch (after `FitTimer`'s warm ones) and `stop` when the fit ends"
    order = -1001
    def __init__(self, start, stop): self.start, self.stop, self.seen = start, stop, 0
    def before_batch(self):
        if self.learn.training and self.seen == warm: self.start()
        self.seen += self.learn.training
    def after_fit(self): self.stop()

def fit(n=steps, cbs=(), train=False):
    "Training images/s of `learn.fit` as `era-s10 bench` times it; `train`: with what `era-s10 train` adds"
    learn = cifar_learner(dls, path=tmp, cbs=[EpochTimer(), NaNGuard(), StopOnSignal()] if train else None)
    t = FitTimer(warm=warm, n=n)
    if not train:
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=[t, *cbs])
        return t.images_per_s
    extra = [CSVLogger(Path(tmp)/'metrics.csv'), ScheduleLog(Path(tmp)/'schedule.csv')]
    with contextlib.redirect_stdout(None): fit_one_cycle_s10(learn, 2, 1e-4, 1e-3, cbs=[t, *cbs, *extra])
    return t.images_per_s

torch.backends.cudnn.benchmark = True # as `era-s10 train` (`seed_run`) and `era-s10 bench` run on CUDA
bare = bare_loop(loader=dls.train, precision=prec, channels_last=True, warm=warm)
T = interleaved(dict(fit=fit, train_cfg=lambda: fit(train=True), bare=lambda: bare(steps)), 5)
ms = {k: [1000*bs/r for r in v] for k, v in T.items()}
print(f"{torch.cuda.get_device_name() if cuda else 'CPU'}, {prec}, bs {bs}, {steps} steps x 5 rounds; ms per step (median):")
for k, v in ms.items(): print(f"  {k:16s} {statistics.median(v):7.2f}   rounds {[round(o, 2) for o in v]}")
print('  img/s against the bare loop, median of the rounds\' ratios:', *(f"{k} {statistics.median(b/a for a, b in zip(ms[k], ms['bare'])):.3f}x"
      for k in ('fit', 'train_cfg')))

def dev_time(e): return getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)

def prof(name, f, n):
    "Profile `n` training steps of `f(start, stop)`, which calls `start` and `stop` around them; print per-step figures"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    p, t = profile(activities=acts), {}
    def start(): torch.cuda.synchronize() if cuda else None; t[0] = time.perf_counter(); p.start()
    def stop(): torch.cuda.synchronize() if cuda else None; p.stop(); t[1] = time.perf_counter()
    f(start, stop)
    wall = (t[1] - t[0])/n
    ka = {e.key: e for e in p.key_averages()}
    gpu = sum(dev_time(e) for e in ka.values())/n/1000
    kern = sum(e.count for e in ka.values() if dev_time(e) > 0)/n
    bf = sum(dev_time(e) for k, e in ka.items() if 'bf16' in k.lower() or 'bfloat16' in k.lower())/max(1e-9, n*1000*gpu)
    sy = {k: ka[k].count/n for k in SYNCS if k in ka}
    print(f"{name}: {1000*wall:.2f} ms/step wall under the profiler, GPU busy {gpu:.2f} ms/step, {kern:.0f} kernels/step, "
          f"{100*bf:.0f}% of GPU time in kernels named bf16; per step: " + ', '.join(f'{k} {v:.2f}' for k, v in sy.items()))
    return ka

def bare_prof(start, stop): start(); bare(steps); stop()
kf = prof('learn.fit', lambda start, stop: fit(cbs=[Window(start, stop)]), steps)
kt = prof('train config', lambda start, stop: fit(cbs=[Window(start, stop)], train=True), steps)
kb = prof('bare loop', bare_prof, steps)
print("costliest CPU ops of the train config per step (self CPU us, calls; learn.fit's and the bare loop's beside it):")
for k, e in sorted(kt.items(), key=lambda o: -o[1].self_cpu_time_total)[:18]:
    f_, b = kf.get(k), kb.get(k)
    print(f"  {k[:56]:56s} {e.self_cpu_time_total/steps:8.1f} x{e.count/steps:5.1f}   fit {f_.self_cpu_time_total/steps if f_ else 0:8.1f}   bare {b.self_cpu_time_total/steps if b else 0:8.1f}")

if cuda: # which Python lines sync inside a training batch
    class Warn(Callback):
        order = -1000
        def before_batch(self):
            if self.training: torch.cuda.set_sync_debug_mode('warn')
    class Default(Callback):
        order = 1000
        def after_batch(self): torch.cuda.set_sync_debug_mode('default')
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        try: fit(n=5, cbs=[Warn(), Default()], train=True)
        finally: torch.cuda.set_sync_debug_mode('default')
    where = collections.Counter(f"{w.filename}:{w.lineno}" for w in ws if 'synchroniz' in str(w.message))
    print(f"syncs inside 8 training batches: {sum(where.values())}", *(f"  {v} x {k}" for k, v in where.most_common(8)), sep='\n')
