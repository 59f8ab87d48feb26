"""Helpers for the EEG embedding tests: a tiny ONNX encoder, a loopback file server that can
stall and cut its connection, and real EEG (the FIF recording in ``tests/data``)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mne
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FIF = Path(__file__).parent / "data" / "resting_EO_200Hz_raw.fif"
ONNX_SAMPLES = 1280
ONNX_DIM = 8


def real_eeg_uv() -> np.ndarray:
    """The recording's two channels in µV (200 Hz, 6 min; its last 8 s are zeros)."""
    raw = mne.io.read_raw_fif(FIF, preload=True, verbose="error")
    return raw.get_data() * 1e6


def tiny_onnx_encoder(seed: int = 3) -> bytes:
    """An ONNX encoder of our contract: ``[N, C, 1280]`` µV at 256 Hz -> ``[N, 8]``.

    It takes the mean absolute value over channels, then a fixed random projection of the
    1280 samples to 8 dims: small, deterministic, and it really depends on the signal.
    """
    weights = np.random.default_rng(seed).normal(size=(ONNX_SAMPLES, ONNX_DIM)).astype(np.float32) / 40.0
    graph = helper.make_graph(
        [
            helper.make_node("Abs", ["eeg"], ["magnitude"]),
            helper.make_node("ReduceMean", ["magnitude", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "W"], ["embedding"]),
        ],
        "tiny_eeg_encoder",
        [helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["batch", "channels", ONNX_SAMPLES])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", ONNX_DIM])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {"sample_rate_hz": "256", "epoch_samples": str(ONNX_SAMPLES)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


class FileServer:
    """Serves ``payload`` at every path, honouring ``Range``.

    Knobs: ``stall_at``/``stall_s`` (pause that long once the body reached that byte),
    ``cut_at`` (close the connection once, at that byte), ``chunk`` (bytes per write, with
    ``chunk_sleep_s`` between writes). ``ranges`` records each request's ``Range`` header.
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.stall_at: int | None = None
        self.stall_s = 0.0
        self.cut_at: int | None = None
        self.chunk = 4096
        self.chunk_sleep_s = 0.0
        self.ranges: list[str | None] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="exg-files").start()

    def url(self, name: str = "encoder.onnx") -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/weights/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        header = self.headers.get("Range")
        server.ranges.append(header)
        payload, start = server.payload, 0
        if header and header.startswith("bytes="):
            start = int(header[6:].split("-")[0])
        body = payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        position = start
        try:
            while position < len(payload):
                if server.cut_at is not None and position >= server.cut_at:
                    server.cut_at = None
                    self.connection.shutdown(2)
                    return
                if server.stall_at is not None and position >= server.stall_at:
                    server.stall_at = None
                    time.sleep(server.stall_s)
                end = min(len(payload), position + server.chunk)
                self.wfile.write(payload[position:end])
                self.wfile.flush()
                position = end
                if server.chunk_sleep_s:
                    time.sleep(server.chunk_sleep_s)
        except OSError:
            return
