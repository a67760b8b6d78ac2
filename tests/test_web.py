"""The web studio through FastAPI's TestClient: checkpoints, options per family, a real generation job,
bad primers, ids that look like paths, the queue limit and the time limit; then the page in a real browser
(Debian's headless Chromium through Playwright, skipped with the reason where either is missing)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed")
from fastapi.testclient import TestClient  # noqa: E402
from symusic import Score  # noqa: E402

from tunesmith.core.score import bar_starts  # noqa: E402
from tunesmith.web.app import create_app  # noqa: E402
from tunesmith.web.command import check_host  # noqa: E402

PRIMER = Path(__file__).parent / "fixtures" / "bach40" / "chorale_04_5.mid"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "mine.ckpt").write_bytes((Path(__file__).parents[1] / "checkpoints" / "lstm-bach.ckpt").read_bytes())
    with TestClient(create_app(models, work_dir=tmp_path_factory.mktemp("serve"))) as test_client:
        yield test_client


def one_sentence(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    return detail


def wait_for(client, url: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish in {seconds} s")


def test_lists_shipped_and_local_checkpoints(client):
    listed = {e["name"]: e["source"] for e in client.get("/api/checkpoints").json()}
    assert {"lstm-bach", "jsb-best", "midinet"} <= set(listed) and listed["lstm-bach"] == "shipped"
    assert listed["mine"] == "local"
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert "/api/generate" in client.get("/openapi.json").json()["paths"]


def test_options_follow_the_family(client):
    midinet = client.get("/api/checkpoints/midinet").json()
    jsb = client.get("/api/checkpoints/jsb-best").json()
    assert midinet["generation"] == "one-shot" and "chords" in midinet["options"]
    assert jsb["generation"] == "autoregressive" and "top_k" not in jsb["options"]
    assert client.get("/api/checkpoints/mine").json()["family"] == "lstm"
    refused = client.post("/api/generate", json={"checkpoint": "jsb-best", "top_k": 5})
    assert refused.status_code == 400 and "--top-k" in one_sentence(refused)


def test_generate_with_a_primer_end_to_end(client):
    primer = client.post("/api/primers", files={"file": ("p.mid", PRIMER.read_bytes(), "audio/midi")})
    assert primer.status_code == 200 and primer.json()["notes"] > 0
    body = {"checkpoint": "lstm-bach", "n": 1, "bars": 2, "primer_id": primer.json()["primer_id"],
            "primer_bars": 1, "audio": True, "temperature": 0.9}
    queued = client.post("/api/generate", json=body)
    assert queued.status_code == 202
    job = wait_for(client, queued.json()["status_url"])
    assert job["status"] == "done", job["error"]
    files = job["pieces"][0]["files"]
    midi = client.get(files["midi"], params={"download": 1})
    assert "attachment" in midi.headers["content-disposition"]
    assert len(bar_starts(Score.from_midi(midi.content))) == 1 + 2  # the primer's bar, then 2 new ones
    assert client.get(files["png"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(files["wav"]).content[:4] == b"RIFF"


@pytest.mark.parametrize("data", [b"not a midi file at all", b"MThd\x00\x00\x00\x06\x00\x01\x00\x05\x01\xe0MTrk"])
def test_a_bad_primer_is_a_400_sentence(client, data):
    response = client.post("/api/primers", files={"file": ("bad.mid", data, "audio/midi")})
    assert response.status_code == 400 and "not a readable MIDI file" in one_sentence(response)


def test_a_huge_primer_is_refused_before_reading(client):
    response = client.post("/api/primers", files={"file": ("big.mid", b"MThd" + bytes(2 << 20), "audio/midi")})
    assert response.status_code == 413 and "limit" in one_sentence(response)


@pytest.mark.parametrize("url", [
    "/api/checkpoints/..%2F..%2Fetc%2Fpasswd", "/api/checkpoints/../../etc/passwd",
    "/api/jobs/..%2F..%2Fetc%2Fpasswd", "/api/jobs/x/files/..%2F..%2Fetc%2Fpasswd",
])
def test_paths_are_never_followed(client, url):
    response = client.get(url)
    assert response.status_code in (404, 422) and "root:" not in response.text


def test_a_path_as_checkpoint_or_primer_is_unknown(client):
    for body in ({"checkpoint": "../../etc/passwd"}, {"checkpoint": str(PRIMER)},
                 {"checkpoint": "lstm-bach", "primer_id": "../../etc/passwd"}):
        response = client.post("/api/generate", json=body)
        assert response.status_code == 404 and one_sentence(response)


def test_out_of_range_options_are_a_422_sentence(client):
    response = client.post("/api/generate", json={"checkpoint": "lstm-bach", "n": 10_000})
    assert response.status_code == 422 and one_sentence(response).startswith("n:")
    broken = client.post("/api/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and one_sentence(broken) == "the request body is not valid JSON"
    huge = client.post("/api/generate", content=b" " * (1 << 20), headers={"content-type": "application/json"})
    assert huge.status_code == 413 and one_sentence(huge)


def test_a_full_queue_answers_429(tmp_path):
    release = threading.Event()
    with TestClient(create_app(max_waiting=1, work_dir=tmp_path)) as client:
        jobs = client.app.state.jobs
        jobs.submit(lambda job: release.wait(10) and {})  # runs
        time.sleep(0.2)
        jobs.submit(lambda job: {})  # waits
        response = client.post("/api/generate", json={"checkpoint": "lstm-bach", "n": 1, "bars": 1})
        unknown = client.post("/api/generate", json={"checkpoint": "no-such-model", "n": 1, "bars": 1})
        stale = client.post("/api/generate", json={"checkpoint": "lstm-bach", "bars": 1, "primer_id": "0" * 32})
        release.set()
    assert response.status_code == 429 and "queue is full" in one_sentence(response)
    # a wrong name or primer id is the client's mistake whatever the queue holds: not "try again later"
    assert unknown.status_code == 404 and "no checkpoint" in one_sentence(unknown)
    assert stale.status_code == 404 and one_sentence(stale)


def test_a_job_past_its_time_limit_fails_with_a_sentence(tmp_path):
    with TestClient(create_app(job_seconds=0.001, work_dir=tmp_path)) as client:
        queued = client.post("/api/generate", json={"checkpoint": "lstm-bach", "n": 1, "bars": 16})
        job = wait_for(client, queued.json()["status_url"])
    assert job["status"] == "failed" and "time limit" in job["error"]


def test_progress_is_reported_while_generating(tmp_path):
    from tunesmith.generation.generate import GenerateRequest
    from tunesmith.web.jobs import Job
    from tunesmith.web.studio import Catalog, generation_work

    catalog, stages = Catalog(), []
    work = generation_work(catalog, "jsb-best", GenerateRequest(n=1, bars=4, plot=True))
    for index in range(2):  # the first job learns the calls per bar, the second reports progress with them
        job = Job(f"job{index}", tmp_path / f"job{index}", time_limit_s=60, started=time.monotonic())
        job.report = lambda stage, progress=None, job=job: (stages.append((stage, progress)),
                                                             Job.report(job, stage, progress))
        result = work(job)
    assert catalog.calls_per_bar["jsb-best"] > 0 and result["pieces"][0]["bars"] == 4
    shares = [p for stage, p in stages if stage.startswith("generating (about")]
    assert shares and 0.05 < shares[0] <= 0.6 and shares == sorted(shares)


def test_remote_binding_needs_the_flag():
    assert check_host("127.0.0.1", False) and check_host("localhost", False)
    with pytest.raises(Exception, match="--allow-remote"):
        check_host("0.0.0.0", False)
    assert check_host("0.0.0.0", True) is False


# ---- the page in a real browser ------------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def sync_api():
    """Playwright's sync API, or a skip naming what is missing."""
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Debian chromium at /usr/bin/chromium (apt-get install chromium; make test does it)")
    return api


@pytest.fixture(scope="module")
def studio(tmp_path_factory, sync_api):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(work_dir=tmp_path_factory.mktemp("serve"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


def test_browser_generates_in_the_page(studio, sync_api, tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(studio)
            page.wait_for_selector("#checkpoint option[value='jsb-best']", state="attached")
            page.select_option("#checkpoint", "jsb-best")
            page.wait_for_function("document.querySelector('#family').textContent.startsWith('lstm-nade')")
            assert page.is_hidden("[data-option=top_k]") and page.is_visible("[data-option=temperature]")
            page.select_option("#checkpoint", "lstm-bach")
            page.wait_for_function("document.querySelector('#family').textContent.startsWith('lstm,')")
            assert page.is_visible("[data-option=top_k]") and page.is_hidden("[data-option=chords]")
            page.set_input_files("#primer", str(PRIMER))
            page.wait_for_function("document.querySelector('#primer-info').textContent.includes('notes')")
            page.fill("#bars", "2")
            page.fill("#primer_bars", "1")
            page.click("#generate")
            page.wait_for_selector(".piece img", timeout=60_000)
            page.wait_for_function("document.querySelector('.piece img').naturalWidth > 0")
            page.wait_for_function("document.querySelector('.piece audio').readyState >= 1", timeout=20_000)
            assert "3 bars" in page.text_content(".piece strong")
            assert page.get_attribute(".piece a:last-of-type", "href").endswith(".mid?download=1")
            page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
            assert (tmp_path / "studio.png").stat().st_size > 10_000
        finally:
            browser.close()


def test_browser_shows_a_bad_primer_as_one_sentence(studio, sync_api, tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not MIDI")
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(studio)
            page.wait_for_function("document.querySelector('#family').textContent.length > 0")
            page.set_input_files("#primer", str(bad))
            page.wait_for_selector("#message.error")
            assert "not a readable MIDI file" in page.text_content("#message")
        finally:
            browser.close()
