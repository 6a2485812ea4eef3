"""Where a training step's time goes under `learn.fit`, against the bare loop on the same loader (`era_s10.bench`):
rates of `cifar_learner`'s Learner, of the same Learner with fastai's own callback dispatch, of it with cuDNN
deterministic (fastai's `set_seed(reproducible=True)`), and of the bare loop, interleaved; then, from
`torch.profiler`, each side's wall time, GPU busy time, host syncs and costliest CPU ops per step; and on CUDA the
Python lines that sync inside a training batch (`torch.cuda.set_sync_debug_mode('warn')`).
Usage (on the GPU machine, after `source .gpu/setup.sh`):   python scripts/fit_probe.py DATA [STEPS] [BS]"""
import collections, statistics, sys, tempfile, time, warnings
import torch
from torch.profiler import profile, ProfilerActivity
from fastai.learner import Learner
from fastai.callback.core import Callback
from era_s10.data import cifar10_dls
from era_s10.learner import cifar_learner, pick_precision
from era_s10.bench import bare_loop, FitTimer, interleaved

data, steps, bs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30, int(sys.argv[3]) if len(sys.argv) > 3 else 512
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
cuda, tmp, warm = dev.type == 'cuda', tempfile.mkdtemp(), 3
dls = cifar10_dls(data, bs=bs, device=dev)
prec = pick_precision(dev)
SYNCS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'cudaMemcpyAsync', 'aten::_local_scalar_dense')

def fit(cls=None, n=steps, cbs=()):
    "Training images/s of `learn.fit` as `cifar_learner` builds it (with `cls`: that Learner class instead)"
    learn = cifar_learner(dls, path=tmp)
    if cls is not None: learn.__class__ = cls
    t = FitTimer(warm=warm, n=n)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=[t, *cbs])
    return t.images_per_s

def deterministic(f):
    "`f` with cuDNN deterministic and without its benchmark, as fastai's `set_seed(reproducible=True)` leaves it"
    def g():
        old = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        try: return f()
        finally: torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old
    return g

torch.backends.cudnn.benchmark = True # as `era-s10 train` (`seed_run`) and `era-s10 bench` run on CUDA
bare = bare_loop(loader=dls.train, precision=prec, channels_last=True, warm=warm)
T = interleaved(dict(fit=fit, fastai_dispatch=lambda: fit(Learner), fit_deterministic=deterministic(fit),
                     bare=lambda: bare(steps)), 5)
ms = {k: [1000*bs/r for r in v] for k, v in T.items()}
print(f"{torch.cuda.get_device_name() if cuda else 'CPU'}, {prec}, bs {bs}, {steps} steps x 5 rounds; ms per step (median):")
for k, v in ms.items(): print(f"  {k:16s} {statistics.median(v):7.2f}   rounds {[round(o, 2) for o in v]}")
print('  img/s against the bare loop, median of the rounds\' ratios:', *(f"{k} {statistics.median(b/a for a, b in zip(ms[k], ms['bare'])):.3f}x"
      for k in ('fit', 'fastai_dispatch', 'fit_deterministic')))

def dev_time(e): return getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)

def prof(name, f, n):
    "Profile `f` (n training steps); print its per-step figures and return the key averages by name"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    torch.cuda.synchronize() if cuda else None
    t = time.perf_counter()
    with profile(activities=acts) as p: f()
    wall = (time.perf_counter() - t)/n
    ka = {e.key: e for e in p.key_averages()}
    gpu = sum(dev_time(e) for e in ka.values())/n/1000
    kern = sum(e.count for e in ka.values() if dev_time(e) > 0)/n
    bf = sum(dev_time(e) for k, e in ka.items() if 'bf16' in k.lower() or 'bfloat16' in k.lower())/max(1e-9, n*1000*gpu)
    sy = {k: ka[k].count/n for k in SYNCS if k in ka}
    print(f"{name}: {1000*wall:.2f} ms/step wall under the profiler, GPU busy {gpu:.2f} ms/step, {kern:.0f} kernels/step, "
          f"{100*bf:.0f}% of GPU time in kernels named bf16; per step: " + ', '.join(f'{k} {v:.2f}' for k, v in sy.items()))
    return ka

n_fit = steps + warm # the fit's warm steps run under the profiler too
kf = prof('learn.fit', lambda: fit(n=steps), n_fit)
kb = prof('bare loop', lambda: bare(n_fit), n_fit)
print("costliest CPU ops of learn.fit per step (self CPU us; the bare loop's beside it):")
for k, e in sorted(kf.items(), key=lambda o: -o[1].self_cpu_time_total)[:18]:
    b = kb.get(k)
    print(f"  {k[:60]:60s} {e.self_cpu_time_total/n_fit:8.1f} x{e.count/n_fit:5.1f}   bare {b.self_cpu_time_total/n_fit if b else 0:8.1f}")

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
        try: fit(n=5, cbs=[Warn(), Default()])
        finally: torch.cuda.set_sync_debug_mode('default')
    where = collections.Counter(f"{w.filename}:{w.lineno}" for w in ws if 'synchroniz' in str(w.message))
    print(f"syncs inside 8 training batches: {sum(where.values())}", *(f"  {v} x {k}" for k, v in where.most_common(8)), sep='\n')
