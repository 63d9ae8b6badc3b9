"""minirnn: recurrent networks from scratch, with handwritten BPTT you can step through.

The public contract (see README "Architecture"): the functional core ``rnn_forward`` /
``rnn_backward``; the ``RNN`` model with ``summary()``; ``count_params``; ``gradcheck``.
"""

from . import analysis, bptt
from .bptt import TBPTT, BPTTStep, bptt_steps, gradient_accuracy, rtrl
from .calculator import calc
from .clip import clip_grad_norm, clip_grad_value
from .functional import (
    GRUCache,
    LSTMCache,
    RNNCache,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .gradcheck import GradcheckReport, gradcheck
from .model import RNN, count_params

__all__ = [
    "RNN",
    "TBPTT",
    "BPTTStep",
    "GRUCache",
    "GradcheckReport",
    "LSTMCache",
    "RNNCache",
    "analysis",
    "bptt",
    "bptt_steps",
    "calc",
    "clip_grad_norm",
    "clip_grad_value",
    "count_params",
    "gradcheck",
    "gradient_accuracy",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "rtrl",
]
__version__ = "0.1.0"
