"""The HTTP service on a real uvicorn server bound to 127.0.0.1, with a real httpx client."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn

from textdistill.serve import body_limit, create_app, load_predictor
from textdistill.students import build_student
from textdistill.students.hub import Student, save_student
from textdistill.tokens import TokenSettings

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "positive"]
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1 (a free port picked by the OS); yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def student_dir(tiny_tokenizer, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_student(
        "cnn", {"embedding_dim": 8, "num_filters": 4, "kernel_sizes": [2, 3]}, len(tiny_tokenizer), 2
    ).eval()
    return save_student(
        model,
        tmp_path_factory.mktemp("served") / "student",
        name="cnn",
        arch={},
        label_names=LABELS,
        tokenizer=tiny_tokenizer,
        tokens=TokenSettings(32, "head", 0.25),
    )


@pytest.fixture(scope="module")
def student(student_dir) -> Student:
    return Student.from_pretrained(student_dir)


@pytest.fixture(scope="module")
def client(student) -> Iterator[httpx.Client]:
    with (
        running(create_app(student, max_texts=4, max_chars=100)) as url,
        httpx.Client(base_url=url, timeout=20, trust_env=False) as http,
    ):
        yield http


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "labels": LABELS, "max_texts": 4, "max_chars": 100}


def test_predict(client, student):
    texts = ["a wonderful moving film", "boring and the worst acting"]
    response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for prediction, expected in zip(predictions, student.predict(texts), strict=True):
        assert prediction["label"] == expected["label"] and prediction["label"] in LABELS
        assert set(prediction["probabilities"]) == set(LABELS)
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": ["good"] * 5}, 413, "too many texts: 5 in one request; the limit is 4"),
        ({"texts": ["fine", "x" * 101]}, 413, "texts[1] has 101 characters; the limit is 100"),
        ({"texts": []}, 422, '"texts" is empty'),
        ({"texts": "good"}, 422, '"texts" must be a list of strings, got str'),
        ({"texts": ["good", 3]}, 422, "texts[1] must be a string, got int"),
        ({"text": ["good"]}, 422, 'with a "texts" list'),
        (["good"], 422, 'with a "texts" list'),
        ({"texts": ["good"], "top_k": 2}, 422, "unknown field(s) ['top_k']"),
        ({"texts": ["good", ""]}, 422, "texts[1] is empty or whitespace-only"),
        ({"texts": ["good", "bad", " \t\n "]}, 422, "texts[2] is empty or whitespace-only"),
    ],
    ids=[
        "too-many",
        "too-long",
        "empty",
        "not-a-list",
        "not-a-string",
        "no-texts",
        "not-an-object",
        "extra-field",
        "empty-text",
        "whitespace-text",
    ],
)
def test_bad_requests(client, body, status, message):
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"texts": ["good"', "malformed JSON: Expecting"),
        (b"", "empty request body"),
        (b"\xff\xfe{", "not valid UTF-8"),
        (b"[" * 2000 + b"]" * 2000, "malformed JSON: nested too deeply"),
    ],
    ids=["truncated", "empty", "not-utf8", "deeply-nested"],
)
def test_malformed_json(client, content, message):
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert client.get("/health").status_code == 200  # the server is still there


def test_lone_surrogate_is_a_422_not_a_500(client):
    content = b'{"texts": ["good", "bad \\ud800 film"]}'  # valid JSON, but not valid Unicode text
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "texts[1] is not valid Unicode: an unpaired surrogate" in response.json()["detail"]


def test_oversized_body_is_refused(client):
    limit = body_limit(4, 100)
    response = client.post("/predict", content=b" " * (limit + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["detail"]


def test_streamed_oversized_body_is_refused(client):
    def chunks() -> Iterator[bytes]:  # no content-length header: the server must count
        for _ in range(body_limit(4, 100) // 1000 + 2):
            yield b" " * 1000

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


class Broken:
    label_names = LABELS

    def predict(self, texts: list[str]) -> list[dict]:
        raise RuntimeError("model exploded")


def test_predictor_failure_is_a_clear_500():
    with running(create_app(Broken())) as url, httpx.Client(base_url=url, timeout=20, trust_env=False) as http:
        response = http.post("/predict", json={"texts": ["good"]})
        assert response.status_code == 500 and "prediction failed" in response.json()["detail"]
        assert http.get("/health").status_code == 200


class NaNModel:
    label_names = LABELS

    def predict(self, texts: list[str]) -> list[dict]:
        return [{"label": LABELS[0], "probabilities": dict.fromkeys(LABELS, float("nan"))} for _ in texts]


def test_non_finite_predictions_are_a_clear_500_not_null(student_dir):
    broken_student = Student.from_pretrained(student_dir)  # a model that breaks after loading (e.g. overflow)
    with torch.no_grad():
        broken_student.model.classifier.bias.fill_(float("nan"))
    for predictor in (NaNModel(), broken_student):
        with running(create_app(predictor)) as url, httpx.Client(base_url=url, timeout=20, trust_env=False) as http:
            response = http.post("/predict", json={"texts": ["good", "bad"]})
            assert response.status_code == 500
            assert "NaN or inf" in response.json()["detail"] and "[0, 1]" in response.json()["detail"]


def test_a_file_that_is_not_onnx_is_a_clear_error(student_dir):
    (student_dir / "junk.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ValueError, match=r"junk.onnx is not a loadable ONNX model"):
        load_predictor(student_dir, "junk.onnx")


def test_an_onnx_export_is_served_with_the_students_labels(student_dir, student):
    from textdistill.compress import export_onnx

    export_onnx(student.model, student_dir / "model.onnx", max_length=32)
    texts = ["a wonderful moving film", "boring and the worst acting"]
    onnx_student = load_predictor(student_dir, "model.onnx")
    assert [p["label"] for p in onnx_student.predict(texts)] == [p["label"] for p in student.predict(texts)]


def test_python_m_serve_runs_the_serve_command():
    """``python -m textdistill.serve DIR`` is ``textdistill serve DIR``: a bad directory exits non-zero, saying so."""
    command = [sys.executable, "-m", "textdistill.serve", "/nonexistent/student"]
    result = subprocess.run(command, timeout=120, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "student directory /nonexistent/student does not exist" in result.stderr


def test_create_app_rejects_bad_limits(student):
    with pytest.raises(ValueError, match="at least 1"):
        create_app(student, max_texts=0)


def test_load_test_script(student_dir, tmp_path):
    """The loopback load test runs end to end on a tiny student (a few requests, bounded time)."""
    out = tmp_path / "load.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "load_test.py"), "--model-dir", str(student_dir)]
    command += ["--requests", "12", "--max-seconds", "10", "--concurrency", "1", "4", "--out", str(out)]
    subprocess.run(command, check=True, timeout=120, cwd=ROOT, capture_output=True)
    results = json.loads(out.read_text())
    assert [level["concurrency"] for level in results["levels"]] == [1, 4]
    for level in results["levels"]:
        assert level["ok"] > 0 and level["errors"] == 0
        assert level["requests_per_s"] > 0 and level["p99_ms"] >= level["p50_ms"] > 0
