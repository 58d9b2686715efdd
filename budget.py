"""A training run sized to a wall-clock budget (ExtraConfig `max_train_minutes`) instead of a step count alone.

Two-core CPUs differ by more than 2x (an AVX-512 EPYC ran the offline default's step in 4 s, an AVX2 one in 8.5 s), so
a fixed `max_steps` either overruns "15 minutes on a laptop" on a slow machine or leaves the budget unused on a fast one.
`TimeBudget` times the first `measure_steps` steps, then fixes the run's length: as many steps as fit the time left
(`max_steps` stays the upper bound), and the learning-rate schedule is rebuilt for that length so that a cosine schedule
still ends at zero. The chosen length is logged, saved with every checkpoint (a resumed run keeps it) and reproducible
with `--max_train_minutes 0 --max_steps N`. If a step or an evaluation runs long afterwards, the run stops when the
budget is spent.
"""

import math
import time

import torch
from transformers import TrainerCallback
from transformers.optimization import get_scheduler
from transformers.trainer_callback import ExportableState

RESERVE = 0.08  # of the budget, kept for evaluations, checkpoints and the final save after the last step


def budget_callbacks(minutes):
    """The trainer callbacks for `max_train_minutes` (none when it is unset or 0)."""
    return [TimeBudget(minutes)] if minutes else []


class TimeBudget(TrainerCallback, ExportableState):
    def __init__(self, minutes: float, measure_steps: int = 10, sized_steps: int | None = None):
        self.minutes = minutes
        self.measure_steps = measure_steps
        self.sized_steps = sized_steps  # the run's length once chosen; restored from a checkpoint when resuming

    def state(self) -> dict:
        return {"args": {"minutes": self.minutes, "measure_steps": self.measure_steps, "sized_steps": self.sized_steps}}

    def on_train_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        self.started = time.monotonic()
        self.first_step = state.global_step  # 0, or the checkpoint's step when resuming
        self.first_step_done = None
        if state.global_step > 0 and self.sized_steps is None:  # resuming: the length the run chose, saved with it
            saved = state.stateful_callbacks.get(type(self).__name__, {})  # (the Trainer restores callbacks only
            self.sized_steps = saved.get("args", {}).get("sized_steps")  # with restore_callback_states_from_checkpoint)
        if self.sized_steps is not None:
            fit_schedule(args, state, lr_scheduler, optimizer, self.sized_steps)

    def on_step_end(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        now = time.monotonic()
        if self.first_step_done is None:
            self.first_step_done = now  # the first step warms caches and allocators up: not counted in the timing
        steps_timed = state.global_step - self.first_step - 1
        seconds_per_step = (now - self.first_step_done) / steps_timed if steps_timed > 0 else None
        if self.sized_steps is None and steps_timed >= self.measure_steps:
            self.size_run(args, state, lr_scheduler, optimizer, now, seconds_per_step)
        out_of_time = seconds_per_step is not None and now + seconds_per_step > self.started + 60 * self.minutes
        reached_length = self.sized_steps is not None and state.global_step >= self.sized_steps
        if reached_length or agreed(out_of_time, max):
            if not reached_length:  # the chosen length (printed above) was not reached: say so, it is not this run's
                print(f"max_train_minutes {self.minutes:g}: the budget is spent at step {state.global_step} of "
                      f"{self.sized_steps or state.max_steps}: later steps, evaluations and checkpoints took longer "
                      "than the timed steps", flush=True)
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control

    def size_run(self, args, state, lr_scheduler, optimizer, now, seconds_per_step):
        seconds_left = 60 * self.minutes * (1 - RESERVE) - (now - self.started)
        fitting = state.global_step + max(0, math.floor(seconds_left / seconds_per_step))
        self.sized_steps = agreed(min(state.max_steps, fitting), min)
        print(f"max_train_minutes {self.minutes:g}: {seconds_per_step:.1f} s a step here, so {self.sized_steps} steps "
              f"(max_steps {state.max_steps}); `--max_train_minutes 0 --max_steps {self.sized_steps}` repeats this run's "
              "length", flush=True)
        fit_schedule(args, state, lr_scheduler, optimizer, self.sized_steps)


def agreed(value, reduce):
    """The value every process of a distributed run agrees on (the slowest's), so that they all stop at one step:
    a process that stops alone leaves the others waiting for it in the next gradient all-reduce."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    values = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(values, value)
    return reduce(values)


def fit_schedule(args, state, lr_scheduler, optimizer, steps):
    """Rebuild the learning-rate schedule for a run of `steps` steps, in place (the trainer holds the scheduler)."""
    state.max_steps = steps
    lr_scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
    if lr_scheduler is None or not hasattr(lr_scheduler, "lr_lambdas"):
        return  # not a LambdaLR (e.g. reduce_lr_on_plateau): only the length changes
    fitted = get_scheduler(args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=args.get_warmup_steps(steps),
                           num_training_steps=steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    lr_scheduler.lr_lambdas = fitted.lr_lambdas
    step = lr_scheduler.last_epoch
    for group, base_lr, factor in zip(optimizer.param_groups, lr_scheduler.base_lrs, fitted.lr_lambdas):
        group["lr"] = base_lr * factor(step)  # the next optimizer step already follows the new schedule
