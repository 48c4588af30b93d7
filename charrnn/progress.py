"""Training progress on stderr: a Rich bar on a terminal, plain periodic lines anywhere else."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class Reporter:
    """A `report(event, info)` callback for train(); `close()` when training ends."""

    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=True, soft_wrap=True)  # looked up now, so test runners capture it
        self.quiet = quiet
        self.steps = self.chars_per_step = self.log_every = 0
        self.loss = self.val_loss = None
        self.bar: Progress | None = None
        self.task = TaskID(0)  # the bar's one task, once there is a bar

    def __call__(self, event: str, info: dict) -> None:
        if self.quiet:
            return
        getattr(self, f"_on_{event}")(info)

    def _on_resume(self, info):
        self.console.print(f"resuming from {info['path']} at step {info['step']}", highlight=False)

    def _on_note(self, info):
        self.console.print(info["text"], highlight=False, markup=False)

    def _on_start(self, info):
        self.steps, self.chars_per_step, self.log_every = info["steps"], info["chars_per_step"], info["log_every"]
        self.console.print(f"training on {info['plan']}", highlight=False, markup=False)
        if info["auto_steps"]:
            budget = f"{info['max_seconds']:g} s"
            text = (
                f"train.steps: auto: the count is fitted to the {budget} budget after a timed stretch of steps"
                if self.steps == "auto"
                else f"train.steps: auto: {self.steps} steps, as the checkpoint fixed them; or {budget}, if sooner"
            )
            self.console.print(text, highlight=False, markup=False)
        if info["scored"] == "ema":
            self.console.print("validation scores the averaged weights (train.ema)", highlight=False, markup=False)
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[speed]} chars/s"),
                TimeRemainingColumn(),
                console=self.console,
            )
            total = self.steps if self.steps != "auto" else None  # a bar without an end until the count is fixed
            self.task = self.bar.add_task("train", total=total, completed=info["step"], loss="-", val="-", speed="-")
            self.bar.start()

    def _on_step(self, info):
        self.loss, step = info["loss"], info["step"]
        speed = info["chars_per_sec"]
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=_fmt(self.loss), speed=f"{speed:,.0f}")
        elif step % self.log_every == 0 or step == self.steps:
            self._line(step, speed)

    def _on_steps(self, info):
        self.steps = info["steps"]
        text = (
            f"train.steps: auto: {self.steps} steps fit the {info['budget_seconds']:g} s budget "
            f"({info['steps_per_sec']:.2f} steps/s timed before step {info['fixed_at_step']}; "
            f"{info['eval_seconds']:.2f} s a validation, {info['save_seconds']:.2f} s a checkpoint)"
        )
        if self.bar is not None:
            self.bar.update(self.task, total=self.steps)
            self.bar.console.print(text, highlight=False, markup=False)
        else:
            self.console.print(text, highlight=False, markup=False)

    def _on_eval(self, info):
        self.val_loss = info["val_loss"]
        if self.bar is not None:
            self.bar.update(self.task, val=_fmt(self.val_loss))

    def _on_checkpoint(self, info):
        pass  # the summary names the checkpoint; a line per save would drown the log

    def _line(self, step: int, speed: float) -> None:
        eta = "-"  # train.steps: auto before the count is fixed
        if self.steps != "auto":
            minutes, seconds = divmod(int((self.steps - step) * self.chars_per_step / speed if speed > 0 else 0), 60)
            eta = f"{minutes}:{seconds:02d}"
        self.console.print(
            f"step {step}/{self.steps}  loss {_fmt(self.loss)}  val {_fmt(self.val_loss)}  "
            f"{speed:,.0f} chars/s  ETA {eta}",
            highlight=False,
            soft_wrap=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
