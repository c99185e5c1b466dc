"""What the tasks' command lines share: a task's parser, the
`train` verb (its training and output option groups, its command in the process group under
torchrun, its summary's first line), the log handler, printing generated text as it comes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterable

import torch.distributed as dist

from rnnkit.train import distributed, interrupts
from rnnkit.train.config import EpochBudget, TrainConfig
from rnnkit.train.options import add_options

DIR_HELP = "a checkpoint, or a training run's directory (reads DIR/best, else DIR/last)"
RESUME_HELP = (
    "continue the run in DIR from DIR/last, exactly as if it had not stopped: the data, model "
    "and training options are the run's; --epochs, --max-steps or --max-time give a new total"
)


def task_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    verb_parsers: Iterable[Callable],
    **texts,
) -> argparse.ArgumentParser:
    """`rnnkit NAME <verb>`: the task's parser (`texts`: help, description, epilog) with a
    sub-command from each of `verb_parsers` (each takes the verbs' action)."""
    parser = subparsers.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, **texts
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    for add in verb_parsers:
        add(verbs)
    return parser


def train_verb(
    verbs: argparse._SubParsersAction,
    groups: dict[str, tuple[type, ...]],
    func: Callable,
    *,
    json_help: str,
    epochs: int | None = None,
    defaults: dict | None = None,
    shown: dict | None = None,
    resume: str = RESUME_HELP,
    **texts,
) -> tuple[argparse.ArgumentParser, dict]:
    """A task's `train` verb: an option group per entry of `groups` (its title: the option
    dataclasses it declares), the training group (see `training_options`) and the output group
    (see `run_dir_options`, `resume` the help of its --resume). An option its dataclass marks
    required is required unless --resume is given (the run's own then). Returns the parser and
    its groups by title."""
    parser = verbs.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter, **texts
    )
    made = {}
    for title, classes in groups.items():
        made[title] = parser.add_argument_group(title)
        for cls in classes:
            add_options(made[title], cls)
    needed = [action for action in parser._actions if action.required]
    for action in needed:
        action.required = False  # checked by `_unless_resumed` once --resume is known
        action.help = f"{action.help}; required unless --resume"
    training_options(parser, epochs=epochs, defaults=defaults, shown=shown)
    run_dir_options(parser, json_help, resume=resume)
    parser.set_defaults(func=_unless_resumed(func, needed))
    return parser, made


def _unless_resumed(func: Callable, needed: list[argparse.Action]) -> Callable:
    """`func`, after refusing a fresh run (no --resume) that lacks an option of `needed`."""

    def command(args: argparse.Namespace) -> int:
        missing = [a.option_strings[0] for a in needed if getattr(args, a.dest) is None]
        if missing and not args.resume:
            raise ValueError(
                f"the following arguments are required: {', '.join(missing)} "
                "(unless --resume continues the run in --out)"
            )
        return func(args)

    return command


def stopped(s: dict, rate: str | None = None, unit: str = "tokens", epochs: bool = True) -> str:
    """The first line of a `train` summary: where and why it stopped, how long, how fast."""
    epochs = f"{s['epochs']:.2f} epochs, " if epochs else ""
    line = (
        f"stopped at step {s['step']} ({epochs}{s['stop_reason']}) after "
        f"{s['seconds']:.1f} s of training"
    )
    if rate is not None and s.get(rate):
        line += f", {s[rate]:,.0f} {unit}/s"
    return line


def run_dir_options(parser: argparse.ArgumentParser, json_help: str, resume: str | None = None):
    """The output group of a `train` verb: --out DIR, --resume (with its help; None: none)
    or --force, --json."""
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    again = output.add_mutually_exclusive_group()
    if resume is not None:
        again.add_argument("--resume", action="store_true", help=resume)
    again.add_argument(
        "--force", action="store_true", help="replace a run DIR holds (deletes it first)"
    )
    output.add_argument("--json", action="store_true", help=json_help)
    return output


def training_options(
    parser: argparse.ArgumentParser,
    *,
    epochs: int | None = None,
    defaults: dict | None = None,
    shown: dict | None = None,
):
    """The training group of a `train` verb: the option fields of TrainConfig, and --epochs
    first for a task that trains by epochs (`epochs`: its default when no other budget is
    given; the evaluation then comes once an epoch). `defaults`: the task's own TrainConfig
    defaults, as it hands them to its config; `shown`, texts of "(default: ...)"."""
    training = parser.add_argument_group("training")
    shown = dict(shown or {})
    if epochs is not None:
        add_options(
            training,
            EpochBudget,
            shown={"epochs": f"{epochs} when neither --max-steps nor --max-time is given"},
        )
        shown.setdefault("eval_every", "once an epoch")
    add_options(training, TrainConfig, defaults=defaults, shown=shown)
    return training


def run_training(train: Callable, options: dict, args: argparse.Namespace, summary: Callable):
    """The command of a `train` verb: `train(options, args.out, resume=args.resume,
    overwrite=args.force)`, in the process group when launched by torchrun (logging at INFO in
    process 0, WARNING elsewhere), then process 0 prints the run's summary, as JSON with
    --json, else as `summary(dict)`."""
    distributed.setup()
    main = distributed.is_main()
    try:
        with log_to_stderr(logging.INFO if main else logging.WARNING):
            run = train(options, args.out, resume=args.resume, overwrite=args.force)
    except BaseException:
        if distributed.is_distributed():
            dist.destroy_process_group()  # no barrier: the other processes may not get there
        raise
    distributed.cleanup()
    if main:
        print(json.dumps(run.summary) if args.json else summary(run.summary))
    return _interrupted(run.summary, args) if interrupts.received() else 0


def _interrupted(s: dict, args: argparse.Namespace) -> int:
    """After a SIGINT/SIGTERM: where the run is and how to go on, on stderr; the shell's status
    for that signal (128 + its number: 130, 143), so that scripts see the run did not finish."""
    signum = interrupts.received()
    print(
        f"interrupted by {signal.Signals(signum).name} at step {s['step']}; no test "
        f"evaluation was made; {args.out}/last holds it: continue it with the same command "
        "and --resume",
        file=sys.stderr,
    )
    return 128 + signum


@contextlib.contextmanager
def log_to_stderr(level: int):
    """rnnkit's log records as plain lines on stderr while open."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("rnnkit")
    old_level, old_propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate


def stream(prime: str, chars: Iterable[str]) -> None:
    """Print `prime`, then each character as it comes, then a newline."""
    out = sys.stdout
    out.write(prime)
    out.flush()
    for ch in chars:
        out.write(ch)
        out.flush()
    out.write("\n")
    out.flush()
