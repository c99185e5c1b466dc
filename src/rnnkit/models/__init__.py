"""Task models, one per file, each following `output, loss = model(inputs, targets)`."""

from rnnkit.models.lm import CharLM, CharLMConfig, evaluate

__all__ = ["CharLM", "CharLMConfig", "evaluate"]
