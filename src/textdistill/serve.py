"""Inference API: a FastAPI app around any predictor with ``.predict(texts)``, and ``serve`` to run it.

Endpoints:

- ``GET /health`` → ``{"status": "ok", "labels": [...], "max_texts": n, "max_chars": n}``
- ``POST /predict`` with ``{"texts": ["...", ...]}`` → ``{"predictions": [{"label", "probabilities"}, ...]}``
  (a multi-label model answers ``{"labels": [...], "probabilities"}``: the label set at its saved thresholds)

Every bad request gets a JSON ``{"detail": "<what is wrong>"}``: malformed JSON → 400; a body that is not
``{"texts": [non-empty list of strings]}``, or a text that is empty, whitespace-only or not valid Unicode (an
unpaired surrogate such as ``"\\ud800"``) → 422 naming its index; more than ``max_texts`` texts, a text over
``max_chars`` characters, or a body too large to hold such a request → 413. A model that answers NaN or inf is
a 500 saying so, never a prediction. The body is read with a size cap, so a huge upload is refused without
being buffered. Predictions run in a worker thread (at most ``max_concurrency`` at once), so the event loop
keeps answering ``/health`` while a model works.

Run it with ``textdistill serve DIR`` or ``python -m textdistill.serve DIR`` (the same arguments; binds 127.0.0.1
unless ``--host`` says otherwise).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Protocol

import anyio
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from textdistill.compress import load_onnx_student
from textdistill.students.hub import NonFiniteLogitsError, Student, text_problem, verify_tokenizer

logger = logging.getLogger(__name__)


class Predictor(Protocol):
    """Anything that classifies raw texts, e.g. ``students.hub.Student``."""

    def predict(self, texts: list[str]) -> list[dict[str, Any]]: ...


class PredictRequest(BaseModel):
    """The body of ``POST /predict``."""

    texts: list[str] = Field(min_length=1, description="Texts to classify, one prediction each, in order.")


class Prediction(BaseModel):
    """A single-label model's ``label``, or a multi-label model's ``labels`` (the set, possibly empty); never both."""

    label: str | None = None
    labels: list[str] | None = None
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


def body_limit(max_texts: int, max_chars: int) -> int:
    """Bytes a valid request can need: every character escaped as a JSON surrogate pair (12 bytes) + framing."""
    return max_texts * (12 * max_chars + 8) + 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body exceeds the limit of {limit:,} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; malformed, non-UTF-8 or absurdly nested JSON is a 400 that says where."""
    if not body.strip():
        raise HTTPException(400, 'empty request body: send JSON like {"texts": ["a review"]}')
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise HTTPException(400, f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except UnicodeDecodeError:
        raise HTTPException(400, "malformed JSON: the body is not valid UTF-8") from None
    except RecursionError:
        raise HTTPException(400, "malformed JSON: nested too deeply") from None


def validated_texts(payload: Any, max_texts: int, max_chars: int) -> list[str]:
    """``payload["texts"]`` checked: 422 for a wrong shape or type, an empty list or a text that cannot be
    classified (``hub.text_problem``: empty, whitespace-only, not valid Unicode), 413 for the size limits."""
    if not isinstance(payload, dict) or "texts" not in payload:
        raise HTTPException(422, 'the body must be a JSON object with a "texts" list: {"texts": ["a review"]}')
    unknown = sorted(set(payload) - {"texts"})
    if unknown:
        raise HTTPException(422, f'unknown field(s) {unknown}; the body takes only "texts"')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise HTTPException(422, f'"texts" must be a list of strings, got {type(texts).__name__}')
    if not texts:
        raise HTTPException(422, '"texts" is empty: send at least one text')
    if len(texts) > max_texts:
        raise HTTPException(413, f"too many texts: {len(texts)} in one request; the limit is {max_texts}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise HTTPException(422, f"texts[{index}] must be a string, got {type(text).__name__}")
        if len(text) > max_chars:
            raise HTTPException(413, f"texts[{index}] has {len(text):,} characters; the limit is {max_chars:,}")
        problem = text_problem(text)
        if problem:
            raise HTTPException(422, f"texts[{index}] {problem}")
    return texts


def non_finite_predictions(predictions: list[dict[str, Any]]) -> list[int]:
    """Indices of predictions with a NaN or inf probability (a broken model; JSON cannot even carry them)."""
    return [
        index
        for index, prediction in enumerate(predictions)
        if not all(math.isfinite(p) for p in prediction["probabilities"].values())
    ]


def broken_model(indices: list[int]) -> HTTPException:
    return HTTPException(
        500, f"the model produced NaN or inf for texts {indices[:10]}: the served model is broken; no prediction"
    )


def create_app(
    predictor: Predictor, max_texts: int = 64, max_chars: int = 20000, *, max_concurrency: int = 1
) -> FastAPI:
    """The FastAPI app serving ``predictor`` (see the module docstring for the endpoints and errors)."""
    if max_texts < 1 or max_chars < 1 or max_concurrency < 1:
        raise ValueError("max_texts, max_chars and max_concurrency must be at least 1")
    app = FastAPI(title="textdistill", summary="Sentiment classification with a distilled student.")
    limiter = anyio.CapacityLimiter(max_concurrency)
    limit = body_limit(max_texts, max_chars)
    labels = list(getattr(predictor, "label_names", []))
    schema = {"content": {"application/json": {"schema": PredictRequest.model_json_schema()}}, "required": True}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "labels": labels, "max_texts": max_texts, "max_chars": max_chars}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        openapi_extra={"requestBody": schema},
    )
    async def predict(request: Request) -> dict[str, Any]:
        texts = validated_texts(parse_json(await read_body(request, limit)), max_texts, max_chars)
        try:
            predictions = await anyio.to_thread.run_sync(predictor.predict, texts, limiter=limiter)
        except NonFiniteLogitsError as error:
            logger.error("prediction failed for %d texts: %s", len(texts), error)
            raise HTTPException(500, f"{error}") from None
        except Exception:
            logger.exception("prediction failed for %d texts", len(texts))
            raise HTTPException(500, "prediction failed; the server log has the details") from None
        broken = non_finite_predictions(predictions)
        if broken:
            logger.error("the model produced NaN or inf probabilities for texts %s", broken)
            raise broken_model(broken)
        return {"predictions": predictions}

    return app


def load_onnx_predictor(model_dir: str | Path, onnx_file: str) -> Predictor:
    """The ONNX export ``model_dir/onnx_file`` behind the student's tokenizer, checked by one probe prediction.

    A file ONNX Runtime cannot load, or a graph that cannot classify a text (wrong inputs, NaN outputs), is a
    ValueError naming the file, so the server never starts on it.
    """
    path = Path(model_dir) / onnx_file
    try:
        student = load_onnx_student(model_dir, onnx_file)
    except ValueError:
        raise
    except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        raise ValueError(f"{path} is not a loadable ONNX model: {type(error).__name__}: {error}") from error
    verify_tokenizer(student.tokenizer, student.config, Path(model_dir))
    try:
        student.predict_logits(["a probe sentence"])
    except Exception as error:
        raise ValueError(f"{path} loads but cannot classify a text: {type(error).__name__}: {error}") from error
    return student


def load_predictor(model_dir: str | Path, onnx_file: str | None = None) -> Predictor:
    """A saved student (``Student.from_pretrained``), or its ONNX export run by ONNX Runtime."""
    if onnx_file:
        return load_onnx_predictor(model_dir, onnx_file)
    return Student.from_pretrained(model_dir)


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    onnx_file: str | None = None,
    max_texts: int = 64,
    max_chars: int = 20000,
    num_threads: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve the student in ``model_dir`` over HTTP with uvicorn until interrupted."""
    import torch
    import uvicorn

    if num_threads:
        torch.set_num_threads(num_threads)
    app = create_app(load_predictor(model_dir, onnx_file), max_texts, max_chars)
    logger.info("serving %s on http://%s:%d", model_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


if __name__ == "__main__":  # python -m textdistill.serve DIR [options]: the same as textdistill serve
    from textdistill.cli import main

    raise SystemExit(main(["serve", *sys.argv[1:]]))
