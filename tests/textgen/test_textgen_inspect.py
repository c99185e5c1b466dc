"""Tests for the hidden-state viewer (`rnnkit textgen inspect`): the features, the correlation
ranking, the activations against the model's own forward, the page, the command's errors, and
the page in a real headless Chromium."""

import base64
import html as html_module
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
import torch
from clirun import assert_one_error_line, rnnkit

from rnnkit import textgen
from rnnkit.textgen import page as page_module
from rnnkit.textgen.data import CharVocab
from rnnkit.textgen.inspect import (
    bracket_depth,
    correlations,
    hidden_states,
    inside_quotes,
    inspect_text,
    line_position,
    top_units,
)
from rnnkit.textgen.model import CharLM

TINY = ["--hidden", "16", "--layers", "2", "--bptt", "16", "--batch", "4"]
TINY += ["--max-steps", "3", "--eval-every", "3"]
LINES = [
    'she said "the quick fox" and left',
    "f(x, [a lazy dog], {b: (c)})",
    "seven birds sing softly",
]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("\n".join(LINES * 30) + "\n", encoding="utf-8")  # about 2,600 characters
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, text_file) -> Path:
    """A 3-step run of a 2 x 16 LSTM: its directory."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code, _, err = rnnkit("textgen", "train", "--data", text_file, *TINY, "--out", out)
    assert code == 0, err
    return out


def values(t: torch.Tensor) -> list:
    return t.tolist()


# ---- features and correlations


def test_inside_quotes():
    assert values(inside_quotes('a"bc"d')) == [0, 1, 1, 1, 0, 0]
    assert values(inside_quotes('"x""y"')) == [1, 1, 0, 1, 1, 0]
    assert values(inside_quotes('a"b"c"d')) == [0, 1, 1, 0, 0, 0, 0]  # the last " is unpaired
    assert values(inside_quotes("no quotes")) == [0] * 9


def test_line_position():
    assert values(line_position("ab\ncd")) == [1, 2, 0, 1, 2]
    assert values(line_position("\n\nx")) == [0, 0, 1]
    assert values(line_position("abc")) == [1, 2, 3]


def test_bracket_depth():
    assert values(bracket_depth("a(b[c])d")) == [0, 1, 1, 2, 2, 1, 0, 0]
    assert values(bracket_depth("{[(")) == [1, 2, 3]
    assert values(bracket_depth(")(x)")) == [0, 1, 1, 0]  # a stray closer is ignored


def test_a_unit_that_is_a_feature_ranks_first():
    text = "\n".join(LINES * 4)
    n, g = len(text), torch.Generator().manual_seed(1)
    acts = torch.rand(n, 6, generator=g) * 2 - 1  # (N, H) noise
    depth, position = bracket_depth(text), line_position(text)
    acts[:, 4] = depth  # unit 4 is the bracket depth
    acts[:, 1] = 3 - 0.5 * position  # unit 1 is the position in line, reversed
    acts[:, 2] = depth + torch.rand(n, generator=g)  # unit 2 follows the depth, with noise
    acts[:, 5] = 0.25  # constant: r is undefined, reported as 0
    r = correlations(acts, depth)
    assert r[4] == pytest.approx(1.0) and r[5] == 0
    assert top_units(r, 2) == [4, 2]
    r = correlations(acts, position)
    assert r[1] == pytest.approx(-1.0) and top_units(r, 1) == [1]
    for u in (0, 3):  # the noise units against numpy's Pearson r
        expected = torch.corrcoef(torch.stack([acts[:, u].double(), position.double()]))[0, 1]
        assert r[u].item() == pytest.approx(expected.item(), abs=1e-9)
    assert top_units(torch.tensor([0.5, -0.5, 0.1])) == [0, 1, 2]  # ties: the lower unit
    assert (correlations(acts, torch.ones(n)) == 0).all()  # a constant feature
    with pytest.raises(ValueError, match="expected activations"):
        correlations(acts, depth[:-1])


# ---- activations


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_hidden_states_match_the_models_forward(cell):
    """Stepped one character at a time: the top layer's h through the head gives the logits of
    the fused forward (`CharLM.run`), and every layer's last h and c are its final state."""
    model = CharLM(12, cell=cell, hidden=8, layers=2, embed=5).train()
    ids = torch.randint(12, (40,))
    logits, final = model.eval().run(ids[None])  # (1, N, V); each part (L, 1, H)
    model.train()
    top = hidden_states(model, ids)  # (N, H)
    assert top.shape == (40, 8) and model.training  # the mode is put back
    with torch.no_grad():
        torch.testing.assert_close(model.head(top)[None], logits)
    for layer in (0, 1):
        torch.testing.assert_close(hidden_states(model, ids, layer=layer)[-1], final[0][layer, 0])
        if cell == "lstm":
            c = hidden_states(model, ids, layer=layer, state="c")[-1]
            torch.testing.assert_close(c, final[1][layer, 0])


def test_hidden_states_reject_a_bad_layer_or_state():
    model = CharLM(5, cell="gru", hidden=4, layers=2)
    ids = torch.zeros(3, dtype=torch.int64)
    for layer in (2, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"layer must be in 0\.\.1 \(the model has 2"):
            hidden_states(model, ids, layer=layer)
    with pytest.raises(ValueError, match="state 'c' needs an LSTM; this model is a gru"):
        hidden_states(model, ids, state="c")
    with pytest.raises(ValueError, match="state must be 'h' or 'c'"):
        hidden_states(model, ids, state="x")


def test_inspect_text_cuts_the_text_and_marks_unknown_characters():
    vocab = CharVocab.from_text("ab\n")
    model = CharLM(len(vocab), hidden=4, layers=1)
    found = inspect_text(model, vocab, "abxa\nbb" * 3, max_chars=8)
    assert found.text == "abxa\nbba" and found.total_chars == 21
    assert found.activations.shape == (8, 4) and found.layer == 0 and found.state == "h"
    assert values(found.unknown) == [False, False, True, False, False, False, False, False]
    assert set(found.r) == set(textgen.FEATURES) and found.r["bracket depth"].shape == (4,)
    assert values(found.features["position in line"]) == [1, 2, 3, 4, 0, 1, 2, 3]
    assert len(found.top("position in line", 3)) == 3
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="max_chars must be a positive int"):
            inspect_text(model, vocab, "ab", max_chars=bad)
    with pytest.raises(ValueError, match="the text is empty"):
        inspect_text(model, vocab, "")


# ---- the page


def tiny_inspection(text: str):
    vocab = CharVocab.from_text(text)
    return inspect_text(CharLM(len(vocab), hidden=6, layers=1), vocab, text)


def test_the_page_is_escaped_and_self_contained():
    text = 'x = "<script>alert(1)</script>" & {{data}} (a[b])\r\n\tend'
    html = page_module.render_page(tiny_inspection(text), source="runs/<mine> (step 3)")
    assert "<script>alert" not in html and "runs/&lt;mine&gt; (step 3)" in html
    assert not re.search(r"(https?:)?//[a-z]|\bsrc=|<link|@import", html)  # fetches nothing
    body = re.search(r'<pre id="text">(.*?)</pre>', html, re.S).group(1)
    chars = re.findall(r"<span>(.*?)</span>", body, re.S)
    assert chars[4:7] == ["&quot;", "&lt;", "s"] and chars[len('x = "<script>alert(1)')] == "&lt;"
    shown = [html_module.unescape(c) for c in chars]  # one span per character; \r: nothing
    assert shown == [c if c != "\r" else "" for c in text]
    data = json.loads(re.search(r'id="data">(.*?)</script>', html, re.S).group(1))
    assert data["n"] == len(text) and data["units"] == 6
    assert len(base64.b64decode(data["q"])) == len(text) * 6


# ---- the command


def test_inspect_writes_a_page(run, text_file, tmp_path):
    out = tmp_path / "page.html"
    code, stdout, err = rnnkit(
        "textgen", "inspect", run, "--text", text_file, "--out", out, "--max-chars", 500
    )
    assert code == 0, err
    assert stdout.startswith(f"wrote {out}: 500 characters, 16 units of layer 1 (h)")
    assert "inside quotes: units" in stdout and "bracket depth: units" in stdout
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "2 x 16 lstm, layer 1" in html
    assert "the first 500 of" in html and not list(tmp_path.glob(".*.tmp"))
    args = ["--text", text_file, "--out", out, "--layer", 0, "--state", "c"]
    code, stdout, err = rnnkit("textgen", "inspect", run / "last", *args)
    assert code == 0, err
    assert "units of layer 0 (c)" in stdout and "largest |c|" in out.read_text(encoding="utf-8")


def test_unknown_characters_are_read_as_unk_with_a_note(run, tmp_path):
    text = tmp_path / "other.txt"
    text.write_text("the fox ~ sings é\n", encoding="utf-8")
    code, stdout, err = rnnkit("textgen", "inspect", run, "--text", text, "--out", tmp_path / "p")
    assert code == 0, err
    assert "note: 2 characters are not in the model's vocabulary (read as <unk>)" in stdout
    assert (tmp_path / "p").read_text(encoding="utf-8").count('<span class="unk">') == 2


INSPECT_ERRORS = [
    (["{run}", "--text", "{missing}"], "no such file"),
    (["{run}", "--text", "{empty}"], "is empty"),
    (["{tmp}", "--text", "{text}"], "not an rnnkit checkpoint"),
    (["{tmp}/none", "--text", "{text}"], "does not exist"),
    (["{run}", "--text", "{text}", "--layer", "2"], "layer must be in 0..1"),
    (["{run}", "--text", "{text}", "--layer", "x"], "--layer"),
    (["{run}", "--text", "{text}", "--max-chars", "0"], "--max-chars"),
    (["{run}", "--text", "{text}", "--state", "x"], "--state"),
    (["{run}", "--text", "{text}", "--encoding", "klingon"], "unknown encoding"),
    (["{run}"], "--text"),
]


@pytest.mark.parametrize("args, match", INSPECT_ERRORS)
def test_bad_inspect_input_is_one_error_line(run, text_file, tmp_path, args, match):
    (tmp_path / "empty.txt").write_bytes(b"")
    names = {"run": run, "text": text_file, "tmp": tmp_path}
    names |= {"missing": tmp_path / "missing.txt", "empty": tmp_path / "empty.txt"}
    out = tmp_path / "page.html"
    code, stdout, err = rnnkit(
        "textgen", "inspect", *[a.format(**names) for a in args], "--out", out
    )
    assert_one_error_line(code, err, match)
    assert stdout == "" and not out.exists()


def test_an_out_that_cannot_be_written_is_one_error_line(run, text_file, tmp_path):
    for out, match in [(tmp_path / "no" / "page.html", "does not exist"), (tmp_path, "directory")]:
        code, _, err = rnnkit("textgen", "inspect", run, "--text", text_file, "--out", out)
        assert_one_error_line(code, err, match)


# ---- the page in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"
)
HEADLESS = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--mute-audio"]


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    it reads commands on fd 3 and answers on fd 4, each message JSON ending in a NUL byte)."""

    def __init__(self, profile: Path, size=(1200, 800)):
        to_browser, self._to = os.pipe()
        self._from, from_browser = os.pipe()
        ends = (os.dup(to_browser), os.dup(from_browser))  # inheritable copies

        def as_fds_3_and_4():
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        args = [CHROMIUM, *HEADLESS, "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        args.append(f"--window-size={size[0]},{size[1]}")
        self.proc = subprocess.Popen(
            [*args, "about:blank"],
            preexec_fn=as_fds_3_and_4,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_browser, from_browser, *ends):
            os.close(fd)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call(  # the viewport itself, whatever the window's frame takes
            "Emulation.setDeviceMetricsOverride",
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def call(self, method: str, **params) -> dict:
        """A command to the page."""
        return self.send(method, self.session, **params)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(expression)

    def _read(self, timeout: float = 30.0) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from], [], [], timeout)
            assert ready, "Chromium did not answer"
            chunk = os.read(self._from, 1 << 20)
            assert chunk, "Chromium closed the pipe"
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        finally:
            os.close(self._to)
            os.close(self._from)


def expected_colour(inspection, unit: int, i: int) -> tuple[int, ...]:
    """The page's colour of character i for `unit` (page.py's 8-bit codes, its script's ramp)."""
    scales, codes = page_module._quantise(inspection.activations)
    v = codes[unit, i].item() / 127 * scales[unit].item()
    end, a = ((178, 24, 43) if v > 0 else (33, 102, 172)), min(abs(v), 1.0)
    return tuple(round(255 + (e - 255) * a) for e in end)


@pytest.fixture(scope="module")
def page(run, text_file, tmp_path_factory):
    """(the page written by the command, what it shows)."""
    out = tmp_path_factory.mktemp("page") / "page.html"
    code, _, err = rnnkit("textgen", "inspect", run, "--text", text_file, "--out", out)
    assert code == 0, err
    model, vocab, _ = textgen.load(run)
    return out, inspect_text(model, vocab, text_file.read_text(encoding="utf-8"))


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


@needs_chromium
def test_the_page_in_chromium(page, tmp_path):
    """Load the page, pick units as a person would (the picker, a click on a table row), read
    the computed colours back, and take a screenshot."""
    path, shown = page
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=path.as_uri())
        browser.wait_for("document.body && document.body.dataset.ready === '1'")
        assert browser.js("document.getElementById('errors').textContent") == ""
        spans = "Array.from(document.getElementById('text').children)"
        colours = f"{spans}.map(s => getComputedStyle(s).backgroundColor)"
        assert browser.js(f"{spans}.length") == len(shown.text) > 2000
        first = int(browser.js("document.body.dataset.unit"))
        before = [rgb(c) for c in browser.js(colours)]
        other = (first + 1) % shown.activations.shape[1]
        browser.js(  # what the browser does when a person chooses an entry of the <select>
            f"const s = document.getElementById('unit'); s.value = '{other}';"
            "s.dispatchEvent(new Event('change', {bubbles: true}));"
        )
        after = [rgb(c) for c in browser.js(colours)]
        assert browser.js("document.body.dataset.unit") == str(other) and after != before
        for unit, seen in ((first, before), (other, after)):
            for i in range(0, len(shown.text), 97):
                want = expected_colour(shown, unit, i)
                assert max(abs(a - b) for a, b in zip(seen[i], want)) <= 1, (unit, i)

        row = shown.top("position in line", 5)[-1][0]  # a real mouse click on a table row
        box = browser.js(
            f"(() => {{ const r = document.querySelector('tr[data-unit=\"{row}\"]')"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            browser.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )
        assert browser.wait_for(f"document.body.dataset.unit === '{row}'")
        assert browser.js("document.getElementById('unit').value") == str(row)
        clicked = [rgb(c) for c in browser.js(colours)]
        assert clicked[7] == expected_colour(shown, row, 7)

        box = browser.js(  # hovering character 7 shows its value
            "(() => { const r = document.getElementById('text').children[7]"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        value = shown.activations[7, row].item()
        readout = browser.wait_for(
            "(t => t.startsWith('char') && t)(document.getElementById('readout').textContent)"
        )
        assert readout.startswith(f"char 7 {json.dumps(shown.text[7])}: h = "), readout
        assert float(readout.split("= ")[1]) == pytest.approx(value, abs=0.01)

        browser.js("document.getElementById('stretch').click()")  # the unit's own range
        stretched = [rgb(c) for c in browser.js(colours)]
        loudest = int(shown.activations[:, row].abs().argmax())
        assert stretched[loudest] in ((178, 24, 43), (33, 102, 172)) and stretched != clicked

        png = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        events = list(browser.events)
    finally:
        browser.close()
    shot = tmp_path / "page.png"
    shot.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert struct.unpack(">II", png[16:24]) == (1200, 800)  # IHDR: width, height
    thrown = [e for e in events if e.get("method") == "Runtime.exceptionThrown"]
    logged = [
        e["params"]["entry"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    assert not thrown and not logged, (thrown, logged)
    fetched = [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert fetched and all(url.startswith("file://") for url in fetched), fetched


@needs_chromium
def test_the_address_picks_the_unit(page, tmp_path):
    """page.html#unit=N opens unit N: Chromium's --dump-dom shows the DOM once the page has
    loaded, its script done."""
    path, shown = page
    unit = 3
    done = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
        + [f"{path.as_uri()}#unit={unit}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout).group(1)
    assert f'data-unit="{unit}"' in body and 'data-ready="1"' in body, body
    assert "data-errors" not in body
    styles = re.findall(r'<span style="background-color: ([^;"]+)', done.stdout)
    assert len(styles) == len(shown.text)
    assert rgb(styles[11]) == expected_colour(shown, unit, 11)
