"""On a CUDA GPU, the library gives what it gives on a CPU: input gradients (and Captum's on the GPU), the cheaper
double backward (cuDNN kernels) against PyTorch's own, every explanation method, bf16 autocast of the regularizer, and
a short training run with resume.

These tests need a GPU and are skipped without one (CI has none); on a GPU machine run
``python -m pytest tests/test_cuda.py``. The CPU suite checks the same properties against the references.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import small_models
import torch
from torch import nn

import interpgrad
from interpgrad import build_regularizer, explain, load_checkpoint, methods
from interpgrad.modelstate import capture_model_state
from interpgrad.reference import captum_explain, has_reference
from interpgrad.training import make_config, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


def _on(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` on ``device`` (the original stays where it is)."""
    return copy.deepcopy(model).to(device)


def _batch(size: int = 4, image: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(size, 3, image, image, generator=generator), torch.tensor([0, 3, 3, 7] * (size // 4))


@pytest.fixture(autouse=True)
def _exact_matmuls() -> None:
    """TF32 would round convolutions to 10 mantissa bits: compare in full float32."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("rule", ["standard", "guided"])
@pytest.mark.parametrize("build", [small_models.cifar_resnet18, small_models.torchvision_resnet18])
def test_input_gradient_on_the_gpu_equals_the_cpu_and_captum(build, rule: str) -> None:  # type: ignore[no-untyped-def]
    model = build()
    x, target = _batch(image=32 if build is small_models.cifar_resnet18 else 64)
    on_cpu = interpgrad.input_gradient(model, x, target, rule=rule)
    gpu_model = _on(model, CUDA)
    on_gpu = interpgrad.input_gradient(gpu_model, x.to(CUDA), target.to(CUDA), rule=rule)
    assert on_gpu.device == x.to(CUDA).device
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-5)
    captum = captum_explain(gpu_model, x.to(CUDA), "gradient" if rule == "standard" else "guided_backprop", target.to(CUDA))
    torch.testing.assert_close(on_gpu, captum.raw.to(on_gpu.dtype), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("regularizer", ["guided", "gradient_norm", "score_matching"])
def test_cheaper_double_backward_equals_pytorchs_on_the_gpu(regularizer: str) -> None:
    """float64 on the GPU: the hand-written second derivatives over cuDNN's kernels equal autograd's own."""
    activation = "softplus" if regularizer == "score_matching" else "relu"
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.125, activation=activation).to(CUDA, torch.float64).train()
    x, y = (t.to(CUDA) for t in _batch())
    x = x.double()
    gradients = []
    for cheap in (True, False):
        loss = build_regularizer(regularizer)
        loss.cheap_double_backward = cheap
        torch.manual_seed(1)  # the same noise for the Hessian-trace estimate
        torch.cuda.manual_seed(1)
        parts = loss(model, x, y)
        gradients.append(torch.autograd.grad(parts.total, list(model.parameters())))
    for ours, reference in zip(*gradients):
        torch.testing.assert_close(ours, reference, rtol=1e-8, atol=1e-10)


def test_bf16_autocast_keeps_the_guided_regularizer_close_to_float32() -> None:
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.25).to(CUDA).train()
    x, y = (t.to(CUDA) for t in _batch(8))
    regularizer = build_regularizer("guided", error="cosine", lam=7.5e-3)
    full = regularizer(model, x, y)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = regularizer(model, x, y)
    half.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert abs(half.classification.item() - full.classification.item()) < 0.05 * abs(full.classification.item()) + 1e-2
    assert abs(half.regularization.item() - full.regularization.item()) < 0.05


@pytest.mark.parametrize("name", [name for name, method in methods().items() if not method.requires])
def test_every_method_on_the_gpu_equals_the_cpu(name: str) -> None:
    model = small_models.cifar_resnet18()
    x, target = _batch()
    on_cpu = explain(model, x, name, target=target)
    gpu_model = _on(model, CUDA)
    before = capture_model_state(gpu_model).summary()
    on_gpu = explain(gpu_model, x.to(CUDA), name, target=target.to(CUDA))
    assert capture_model_state(gpu_model).summary() == before
    assert on_gpu.map.shape == (4, 32, 32) and torch.isfinite(on_gpu.map).all()
    if any(param.name == "seed" for param in methods()[name].params):
        # The noise comes from a generator on the model's device: reproducible there, not the CPU's draws.
        torch.testing.assert_close(explain(gpu_model, x.to(CUDA), name, target=target.to(CUDA)).map, on_gpu.map)
    else:
        torch.testing.assert_close(on_gpu.map.float().cpu(), on_cpu.map.float(), rtol=2e-3, atol=2e-4)
    if has_reference(name):
        reference = captum_explain(gpu_model, x.to(CUDA), name, target.to(CUDA))
        assert reference.map.shape == on_gpu.map.shape


def test_training_on_the_gpu_with_bf16_and_resume(tmp_path: Path) -> None:
    options = {"arch": "resnet18", "width": 0.25, "dataset": "shapes", "n_train": 512, "n_val": 128, "batch_size": 64,
               "regularizer": "guided", "regularizer_params": {"error": "cosine", "lam": 7.5e-3}, "epochs": 1, "device": "cuda", "amp": "bf16",
               "alignment_samples": 64, "seed": 0, "out": str(tmp_path / "run")}
    train(make_config(options), progress=False)
    train(make_config({**options, "epochs": 2}), resume=True, progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[-1])["epoch"] == 2
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "finished" and status["device"].startswith("cuda"), status
    model, _ = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())
