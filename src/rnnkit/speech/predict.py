"""Running a speech model over normalised utterances: class probabilities or CTC
log-probabilities in the input order, decoded transcripts, and the evaluation reports
(accuracy for a classifier; CER and WER for a CTC recogniser)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.data.metrics import confusion_matrix, report
from rnnkit.speech import ctc
from rnnkit.speech.metrics import error_rates
from rnnkit.speech.text import Alphabet

EVAL_BATCH = 64  # utterances per forward pass, longest first


@torch.no_grad()
def outputs(model: nn.Module, frames: list[Tensor], batch_size: int = EVAL_BATCH) -> list[Tensor]:
    """Per utterance: class probabilities (C,) (classify) or log-probabilities (T', C) (ctc);
    the model in eval mode for the pass."""
    model = getattr(model, "module", model)
    was_training, device = model.training, next(model.parameters()).device
    lengths = torch.tensor([len(f) for f in frames], dtype=torch.int64)
    order = torch.argsort(lengths, descending=True, stable=True)
    result: list[Tensor | None] = [None] * len(frames)
    model.eval()
    try:
        for index in order.split(batch_size):
            picked = [frames[i] for i in index.tolist()]
            x = nn.utils.rnn.pad_sequence(picked, batch_first=True).to(device)  # (B, T, F)
            out, _ = model((x, lengths[index].to(device)))
            if model.config.task == "classify":
                probs = out.float().softmax(-1).cpu()  # (B, C)
                for b, i in enumerate(index.tolist()):
                    result[i] = probs[b]
            else:
                log_probs, steps = out[0].float().cpu(), out[1].cpu()  # (B, T', C), (B,)
                for b, i in enumerate(index.tolist()):
                    result[i] = log_probs[b, : steps[b]]
    finally:
        model.train(was_training)
    return result


def decode(log_probs: Tensor, alphabet: Alphabet, beam: int = 1) -> str:
    """The transcript of one utterance's log-probabilities (T', C): greedy when beam is 1."""
    ids = ctc.greedy(log_probs) if beam == 1 else ctc.beam_search(log_probs, beam)
    return alphabet.decode(ids)


def evaluate_classifier(model: nn.Module, frames: list[Tensor], ids: list[int], classes) -> dict:
    """`classify.metrics.report` plus "loss" (mean cross-entropy) and "error" (1 - accuracy)."""
    probs = torch.stack(outputs(model, frames))  # (N, C)
    targets = torch.tensor(ids, dtype=torch.int64)
    picked = probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    loss = float(-picked.double().clamp(min=1e-45).log().mean())
    result = report(confusion_matrix(targets, probs.argmax(1), len(classes)), list(classes))
    return {"loss": loss, "error": 1.0 - result["accuracy"], **result}


def evaluate_ctc(
    model: nn.Module, frames: list[Tensor], transcripts: list[str], alphabet: Alphabet, beam=1
) -> dict:
    """`metrics.error_rates` of the decoded transcripts, plus "error" (the WER, what training
    minimises) and "hypotheses"."""
    hyps = [decode(lp, alphabet, beam) for lp in outputs(model, frames)]
    refs = [" ".join(t.split()) for t in transcripts]
    rates = error_rates(refs, hyps)
    return {"error": rates["wer"], **rates, "beam": beam, "hypotheses": hyps}
