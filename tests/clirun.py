"""Running `rnnkit ...` in the test process, and the checks every CLI test shares."""

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from rnnkit import cli
from rnnkit.train.rundir import LOCK_FILE


def rnnkit(*args) -> tuple[int, str, str]:
    """`rnnkit ARGS` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code: int, err: str, match: str = "") -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert match in err, err


def snapshot(directory: Path) -> dict:
    """Every file under `directory` and its bytes, but the writers' lock (rundir.LOCK_FILE:
    it names the process that last locked the directory, a refused run included)."""
    files = (p for p in sorted(directory.rglob("*")) if p.is_file() and p.name != LOCK_FILE)
    return {p: p.read_bytes() for p in files}
