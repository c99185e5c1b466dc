"""Time-series forecasting as a task: the data, model and training run behind
`rnnkit forecast`, the baselines every evaluation shows beside the model, the rolling-origin
backtest, and a trained forecaster loaded back to forecast and evaluate.

A run's checkpoints carry everything needed to use them: the config {"task": "forecast",
"model": ForecasterConfig, "data": ForecastData + season and split rows, "train": TrainConfig}
and, as the checkpoint's vocabulary, the scalers fitted on the training rows.
"""

from rnnkit.forecast.backtest import backtest
from rnnkit.forecast.baselines import BASELINES, LinearBaseline, naive, seasonal_naive
from rnnkit.forecast.run import TASK, ForecastData, Run, plan, prepare, train
from rnnkit.forecast.trained import Trained, load

__all__ = [
    "BASELINES",
    "TASK",
    "ForecastData",
    "LinearBaseline",
    "Run",
    "Trained",
    "backtest",
    "load",
    "naive",
    "plan",
    "prepare",
    "seasonal_naive",
    "train",
]
