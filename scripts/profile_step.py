"""Where the time of one training step goes on the GPU (torch.profiler over compiled eager steps)."""
import torch
from torch.profiler import ProfilerActivity, profile

from experiments.config import DiffusionConfig, TrainConfig
from experiments.data import Split
from experiments.diffusion.schedule import make_schedule
from experiments.models.unet import UNet
from experiments.config import UNetConfig
from experiments.objectives import diffusion_objective
from experiments.training import Trainer
import tempfile
from pathlib import Path

dev = torch.device("cuda")
images = torch.rand(10000, 1, 28, 28, device=dev)
labels = torch.randint(0, 10, (10000,), device=dev)
sched = make_schedule(300, device=dev)
for compile_ in (False, True):
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(UNet(UNetConfig(hidden=64, conditioning="class")), diffusion_objective(sched, DiffusionConfig(), True),
                     Split(images, labels), TrainConfig(epochs=1), dev, Path(tmp), graph=False, compile=compile_, show_progress=False)
        tr._begin_epoch(1)
        for _ in range(20):
            tr._eager_step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                tr._eager_step()
            torch.cuda.synchronize()
        events = prof.key_averages()
        total = sum(e.device_time_total for e in events) / 10
        print(f"compile={compile_}: kernel time per step {total/1000:.3f} ms; kernels per step "
              f"{sum(e.count for e in events if e.device_time_total > 0)/10:.0f}")
        print(events.table(sort_by="device_time_total", row_limit=18, max_name_column_width=70))
