"""EEG encoders as ONNX models, run with onnxruntime.

Why ONNX: a user can bring an encoder trained anywhere (PyTorch, JAX) as one file, and
onnxruntime runs it on the CPU here and on a GPU where one is offered, with no training
framework installed. The model's contract is ours, kept small:

* input 0: float32 ``[batch, channels, samples]``, EEG in µV at the model's rate;
* output 0: float32 ``[batch, dim]``, one vector per epoch;
* metadata (``metadata_props``), optional: ``sample_rate_hz`` (default 256) and
  ``epoch_samples`` (default: the input's static sample axis, else 1280).

Epochs are resampled to the model's rate and cut or zero-padded to its length. A model with a
fixed channel axis gets the first channels (or zero rows added); a dynamic one gets them all.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

from ... import constants

logger = logging.getLogger(__name__)


class EncoderLoadError(Exception):
    """The model file is missing, is not ONNX, or does not follow the contract above."""


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build really offers here (CPU at least)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxEncoder:
    """One ONNX encoder, loaded once; :meth:`encode` turns epochs into vectors.

    Parameters
    ----------
    name : str
        Encoder id stored with each vector.
    path : Path
        The ``.onnx`` file.
    providers : sequence of str
        Execution providers to try, in order (those onnxruntime does not offer are skipped;
        CPU is always last).
    """

    def __init__(self, name: str, path: Path, providers: tuple[str, ...] = ()) -> None:
        import onnxruntime

        self.name = name
        offered = set(onnxruntime.get_available_providers())
        chosen = [p for p in providers if p in offered and p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise EncoderLoadError(f"cannot load {Path(path).name} as an ONNX model: {exc}") from None
        self.providers = tuple(self._session.get_providers())
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if not inputs or not outputs or len(inputs[0].shape) != 3 or len(outputs[0].shape) != 2:
            raise EncoderLoadError("an EEG encoder takes [batch, channels, samples] and gives [batch, dim]")
        self._input = inputs[0].name
        meta = self._session.get_modelmeta().custom_metadata_map
        shape = inputs[0].shape
        self.sample_rate_hz = float(meta.get("sample_rate_hz", constants.ONNX_DEFAULT_SAMPLE_RATE_HZ))
        self.epoch_samples = int(meta.get("epoch_samples", _static(shape[2]) or constants.ONNX_DEFAULT_EPOCH_SAMPLES))
        self.channels = _static(shape[1])
        dim = _static(outputs[0].shape[1])
        self.dim = dim if dim is not None else int(self.encode(np.zeros((1, self.channels or 1, 16)), 256.0).shape[1])

    def _prepare(self, signals_uv: np.ndarray, sample_rate_hz: float) -> np.ndarray:
        data = np.asarray(signals_uv, dtype=np.float64)
        if data.ndim == 2:
            data = data[None]
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        if abs(sample_rate_hz - self.sample_rate_hz) > 1e-6:
            ratio = Fraction(self.sample_rate_hz / sample_rate_hz).limit_denominator(1000)
            data = signal.resample_poly(data, ratio.numerator, ratio.denominator, axis=-1)
        n = self.epoch_samples
        data = data[..., :n] if data.shape[-1] >= n else np.pad(data, ((0, 0), (0, 0), (0, n - data.shape[-1])))
        if self.channels is not None and data.shape[1] != self.channels:
            c = self.channels
            data = data[:, :c] if data.shape[1] >= c else np.pad(data, ((0, 0), (0, c - data.shape[1]), (0, 0)))
        return np.ascontiguousarray(data, dtype=np.float32)

    def encode(self, signals_uv: np.ndarray, sample_rate_hz: float) -> np.ndarray:
        """Vectors of epochs.

        Parameters
        ----------
        signals_uv : ndarray, shape (n_epochs, n_channels, n_samples) or (n_channels, n_samples)
            Raw EEG in µV.
        sample_rate_hz : float
            Rate of ``signals_uv`` in Hz.

        Returns
        -------
        ndarray, shape (n_epochs, dim), float32
        """
        batch = self._prepare(signals_uv, sample_rate_hz)
        out = self._session.run(None, {self._input: batch})[0]
        vectors = np.asarray(out, dtype=np.float32).reshape(batch.shape[0], -1)
        return np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)
