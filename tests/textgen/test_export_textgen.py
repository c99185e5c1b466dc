"""`rnnkit textgen export`: the exported step model, fed its own state back, generates what
`rnnkit textgen sample --greedy` prints, from the sidecar's vocabulary alone."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import rnnkit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
TEXT = FIXTURES / "inputs" / "textgen_eval.txt"
PRIME, LENGTH = "ROMEO:\nWhat", 60


def greedy(step, side: dict, dtype=np.float32) -> str:
    """PRIME read one character at a time from a zero state, then LENGTH characters, each the
    likeliest but <unk> (as `sample --greedy`), fed back with the state."""
    index = {ch: i for i, ch in enumerate(side["vocabulary"])}
    shape = [side["layers"], 1, side["hidden"]]
    state = [np.zeros(shape, dtype=dtype) for _ in side["state"]]
    ids, out = [index.get(ch, side["unk_id"]) for ch in PRIME], []
    for k in range(len(ids) + LENGTH - 1):
        char = ids[k] if k < len(ids) else out[-1]
        logits, *state = step(np.array([char], dtype=np.int64), *state)
        if k >= len(ids) - 1:
            logits[0, side["unk_id"]] = -np.inf
            out.append(int(logits[0].argmax()))
    return PRIME + "".join(side["vocabulary"][i] for i in out)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_the_step_model_generates_what_sample_prints(fmt, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "textgen", run)
    code, out, err = rnnkit("textgen", "export", run, "--format", fmt, "--data", TEXT, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert [i["name"] for i in summary["inputs"]] == ["char", "h", "c"]
    assert summary["parity"]["shapes"] == [[1, 512], [4, 128]]  # streams x steps
    side = json.loads((run / "export" / f"model.{fmt}.json").read_text())
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(run / "export" / "model.onnx"))
        names = [i["name"] for i in side["inputs"]]

        def step(*inputs):
            return session.run(None, dict(zip(names, inputs)))
    else:
        program = torch.export.load(str(run / "export" / "model.pt2")).module()

        def step(*inputs):
            with torch.no_grad():
                return [t.numpy() for t in program(*map(torch.from_numpy, inputs))]

    code, out, err = rnnkit("textgen", "sample", run, "--prime", PRIME, "--length", LENGTH,
                            "--greedy")  # fmt: skip
    assert code == 0, err
    assert greedy(step, side) == out.removesuffix("\n")
