"""The training loop: AdamW, warm-up + cosine, BCE, early stopping on validation AUC.

The loss is unweighted so that the model's output estimates the probability of collapse (class
weighting with pos_weight w shifts every logit by about log w); the head's bias starts at the
training prevalence's logit, so short fine-tuning does not leave the probabilities near 0.5.
Training steps may run in bf16/fp16 autocast; every score (validation AUC for early stopping,
predictions.csv) is computed in fp32, so it does not depend on the CPU's bf16 support.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vcpred import console
from vcpred.errors import ConfigError
from vcpred.models import BuiltModel
from vcpred.models.factory import trained_state
from vcpred.models.finetune import keep_frozen_norms_in_eval
from vcpred.models.inputs import autocast
from vcpred.models.registry import get_backbone
from vcpred.stats import MIN_PER_CLASS, roc_auc
from vcpred.training.config import TrainingParams
from vcpred.training.data import FrameSet, augment


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use device: auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: AMP on CUDA (bf16 where supported), bf16 autocast on CPUs with native bf16, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU")
    return name


def host_tensor(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """Page-locked on the host when training on CUDA, so batches copy asynchronously."""
    if tensor is None or device.type != "cuda":
        return tensor
    return tensor.pin_memory()


def patient_auc(frames: FrameSet, probabilities: np.ndarray) -> float:
    """AUC of the per-patient mean probability over the frames scored, by vcpred.stats like every
    other AUC; NaN below 2 cases or 2 controls (evaluation's rule: such an AUC is not reported)."""
    table = pd.DataFrame({"p": frames.patient_ids, "y": frames.labels, "prob": probabilities})
    per_patient = table.groupby("p").agg(y=("y", "first"), prob=("prob", "mean")).dropna()
    cases = int(per_patient["y"].sum())
    if min(cases, len(per_patient) - cases) < MIN_PER_CLASS:
        return math.nan
    return roc_auc(per_patient["y"].to_numpy(), per_patient["prob"].to_numpy())


# VcpredModel.head = [Dropout, Linear]; peft keeps a trainable copy of it under modules_to_save.
OUTPUT_LAYER = re.compile(r"(^|\.)head\.(modules_to_save\.default\.|original_module\.)?1$")


def start_at_prevalence(net: torch.nn.Module, prevalence: float) -> None:
    """Set the output layer's bias to logit(prevalence) (the head itself and peft's trainable copy)."""
    prevalence = min(max(prevalence, 1e-3), 1 - 1e-3)
    heads = [m for name, m in net.named_modules() if isinstance(m, torch.nn.Linear) and OUTPUT_LAYER.search(name)]
    if not heads:
        raise RuntimeError("no output layer found under 'head'; vcpred models end in head = [Dropout, Linear]")
    with torch.no_grad():
        for layer in heads:
            layer.bias.fill_(math.log(prevalence / (1 - prevalence)))


@dataclass
class FitResult:
    best_epoch: int
    best_val_auc: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0  # the whole fit, validation passes included
    step_seconds: float = 0.0  # training steps only: batching, augmentation, model, optimiser
    model_seconds: float = 0.0  # forward + backward + optimiser step
    samples_seen: int = 0


class Trainer:
    """Fits one model; `inputs` are frames, or cached backbone features for a frozen backbone."""

    def __init__(self, built: BuiltModel, params: TrainingParams, device: torch.device, precision: str,
                 *, use_features: bool = False):
        self.built, self.params, self.device, self.precision = built, params, device, precision
        self.use_features = use_features
        self.net = built.net.to(device)
        self.generator = torch.Generator().manual_seed(params.seed)
        self.acquisition = params.acquisition_augment  # training batches only, never at predict
        # CNN training in NHWC: oneDNN's convolutions run 1.3x (96 px) to 1.7x (224 px) faster on this
        # CPU (benchmarks/bench_layout.py). From fit to the last predict: safetensors stores contiguous
        # tensors, so `contiguous` hands them back before saving.
        self.channels_last = not use_features and get_backbone(built.spec.backbone).family == "cnn"
        self._nhwc = False

    def _layout(self, nhwc: bool) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
            self._nhwc = nhwc

    def logits(self, inputs: torch.Tensor, clinical: torch.Tensor | None, precision: str) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        if self._nhwc:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        clinical = clinical.to(self.device, non_blocking=True) if clinical is not None else None
        with autocast(self.device, precision):
            if self.use_features:
                return self.built.core.classify(inputs, clinical).float()
            return self.net(inputs, clinical).float()

    def predict(self, inputs: torch.Tensor, clinical: torch.Tensor | None) -> np.ndarray:
        """Probabilities [N] in eval mode, in batches, always in fp32 (see the module docstring)."""
        self.net.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.params.batch_size * 2):
                stop = start + self.params.batch_size * 2
                batch_clinical = clinical[start:stop] if clinical is not None else None
                out.append(torch.sigmoid(self.logits(inputs[start:stop], batch_clinical, "fp32")).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _optimizer(self, total_steps: int):
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.params.lr, weight_decay=self.params.weight_decay)
        warmup = max(1, int(self.params.warmup_epochs * total_steps / self.params.epochs))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def fit(self, train: FrameSet, train_inputs: torch.Tensor, val: FrameSet, val_inputs: torch.Tensor) -> FitResult:
        """Train with early stopping; the best epoch's tensors are loaded back at the end."""
        labels = torch.tensor(train.labels, dtype=torch.float32)
        start_at_prevalence(self.net, float(labels.mean()))
        loss_fn = torch.nn.BCEWithLogitsLoss()
        steps_per_epoch = math.ceil(len(train) / self.params.batch_size)
        optimizer, scheduler = self._optimizer(steps_per_epoch * self.params.epochs)
        scaler = torch.amp.GradScaler(enabled=self.precision == "fp16")
        result, best_state, stale = FitResult(-1, -math.inf), None, 0
        bar = tqdm(range(self.params.epochs), desc="epochs", disable=console.progress_disabled(),
                   leave=False)
        start = time.perf_counter()
        self._layout(nhwc=True)
        for epoch in bar:
            loss = self._epoch(train, train_inputs, labels, loss_fn, optimizer, scheduler, scaler, result)
            val_auc = patient_auc(val, self.predict(val_inputs, val.clinical))
            result.history.append({"epoch": epoch, "loss": loss, "val_auc": val_auc,
                                   "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - start})
            bar.set_postfix(loss=f"{loss:.3f}", val_auc=f"{val_auc:.3f}")
            if val_auc > result.best_val_auc or best_state is None:
                result.best_epoch, result.best_val_auc, stale = epoch, val_auc, 0
                best_state = trained_state(self.net)
            else:
                stale += 1
                if stale >= self.params.patience:
                    break
        result.train_seconds = time.perf_counter() - start
        self.net.load_state_dict(best_state, strict=False)
        return result

    def contiguous(self) -> None:
        """Hand the weights back in the standard layout (safetensors stores contiguous tensors); call
        after the last predict: scoring runs faster channels-last too."""
        self._layout(nhwc=False)

    def _epoch(self, train, inputs, labels, loss_fn, optimizer, scheduler, scaler, result) -> float:
        self.net.train()
        keep_frozen_norms_in_eval(self.net, all_statistics=self.params.batchnorm == "frozen")
        order = torch.randperm(len(train), generator=self.generator)
        total = 0.0
        for start in range(0, len(order), self.params.batch_size):
            step_start = time.perf_counter()
            index = order[start:start + self.params.batch_size]
            batch = inputs[index]
            if self.params.augment and not self.use_features:
                batch = augment(batch, self.generator)
            if self.acquisition is not None and not self.use_features:
                batch = self.acquisition(batch, seed=int(torch.randint(2**31, (1,), generator=self.generator)))
            clinical = train.clinical[index] if train.clinical is not None else None
            tick = time.perf_counter()
            loss = loss_fn(self.logits(batch, clinical, self.precision), labels[index].to(self.device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += float(loss.detach()) * len(index)  # waits for the device, so inside the timing
            result.model_seconds += time.perf_counter() - tick
            result.step_seconds += time.perf_counter() - step_start
            result.samples_seen += len(index)
        return total / len(order)
