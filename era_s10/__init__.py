"""ERA Session 10: a custom ResNet on CIFAR-10 with the one-cycle policy, built with fastai and nbdev

Modules:

- `era_s10.bench`: `run_bench` times, in one run on the same data and machine: the loader against fastai's per-item pipeline and torchvision's, `learn.fit` against a bare PyTorch loop, bf16 against fp32, `torch.compile` against eager, and the training step's GFLOP/s against this machine's matmul peak.
- `era_s10.ema`: `EMA`: a fastai callback that keeps an exponential moving average of the weights and BatchNorm statistics over `torch.optim.swa_utils.AveragedModel`, for evaluation, checkpoints and the final weights.
- `era_s10.timing`: The measuring tools of `era-s10 bench`: rounds that interleave the sides of a comparison, rates of loaders and of `learn.fit`, a bare PyTorch training loop as the baseline, and the FLOPs and matmul peak that give compute use.
- `era_s10.tta`: `get_preds_tta`: predictions averaged over views of each image (identity, mirror, mirror x shifts), the view sets written once as data in `TTA_VIEWS`."""

__version__ = "0.1.0"
