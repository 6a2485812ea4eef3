"""ERA Session 10: a custom ResNet on CIFAR-10 with the one-cycle policy, built with fastai and nbdev

Modules:

- `era_s10.bench`: `run_bench` times, in one run on the same data and machine: the loader against fastai's per-item pipeline and torchvision's, `learn.fit` against a bare PyTorch loop, bf16 against fp32, `torch.compile` against eager, and the training step's GFLOP/s against this machine's matmul peak.
- `era_s10.callbacks`: The training loop's fastai callbacks: bf16 autocast on the CPU, a smoothed loss that stays on the GPU, CUDA-graph steps, and `NaNGuard`.
- `era_s10.checkpoint`: `EpochCheckpoint` saves the model, optimizer, epoch and every RNG state after each epoch; `load_checkpoint` resumes a run to the same weights as an uninterrupted one.
- `era_s10.ema`: `EMA`: a fastai callback that keeps an exponential moving average of the weights and BatchNorm statistics over `torch.optim.swa_utils.AveragedModel`, for evaluation, checkpoints and the final weights.
- `era_s10.learner`: `cifar_learner`: CustomResNet, AdamW and label-smoothed cross-entropy in a fastai `Learner` whose loop never waits for the GPU; `find_lrs`, the LR range test.
- `era_s10.optim`: `adamw`, fastai `Adam`'s update as torch's fused `AdamW`, without weight decay on BatchNorm; `adam_l2`; and each recipe's optimizer settings.
- `era_s10.schedule`: `fit_one_cycle_s10`: one cycle from LRMIN up to LRMAX and back to LRMIN, fastai's `fit_one_cycle` without the annihilation phase, with its schedules in Python floats.
- `era_s10.sweep`: `era-s10 sweep`: ablations and seed studies on Optuna. A trial is one `era-s10 train` run of a grid point, in its own run folder; the study lives in a database, so workers on this machine and on others share it.
- `era_s10.sweep_report`: What a sweep writes as its trials end: `results.csv` (one row per trial), `summary.md` (per setting, mean ± std and the paired difference against a baseline) and `sweep.png`, and a progress line.
- `era_s10.timing`: The measuring tools of `era-s10 bench`: rounds that interleave the sides of a comparison, rates of loaders and of `learn.fit`, a bare PyTorch training loop as the baseline, and the FLOPs and matmul peak that give compute use.
- `era_s10.tta`: `get_preds_tta`: predictions averaged over views of each image (identity, mirror, mirror x shifts), the view sets written once as data in `TTA_VIEWS`."""

__version__ = "0.1.0"
