"""`unmix serve` end to end: the real command in a subprocess, driven by headless Chromium.

A song goes in through the page's file input and comes out as stems that the browser plays, with
a download link that serves the job folder's file; the runs page draws the loss curve, follows a
training as epochs are added, and the compare page draws both runs. Each page is saved as a
screenshot in $UNMIX_TEST_ARTEFACTS (default: test-artefacts/serve/ in the repository).

Chromium and its driver come from Debian (apt-get install chromium chromium-driver); Selenium is
pointed at that driver, so nothing is downloaded while the tests run.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPOSITORY, unmix_executable
from tests.serve.audio_files import write_song

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = Path(os.environ.get("UNMIX_TEST_ARTEFACTS") or REPOSITORY / "test-artefacts" / "serve")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(runs_folder: Path, gain_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """`unmix serve --port 0` on the runs folder; yields (base URL, jobs folder)."""
    jobs = tmp_path_factory.mktemp("serve-jobs")
    process = subprocess.Popen([unmix_executable(), "serve", "--runs", str(runs_folder), "--jobs", str(jobs),
                                "--port", "0"], env=gain_environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith("unmix serve: http://"):
            process.kill()
            pytest.fail(f"unmix serve did not start: {line}{process.communicate(timeout=10)[1]}")
        yield line.split()[2], jobs
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    errors = process.stderr.read()
    assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: the browser tests need Debian's Chromium and its driver; "
                    "run apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1600", "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, message: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        errors = driver.find_elements("css selector", ".error")
        shown = "; ".join(element.text for element in errors if element.text)
        raise AssertionError(f"{message} (page errors: {shown or 'none'})") from None


def submit(browser, base: str, run_name: str, song: Path) -> None:
    """Open the separate page, choose the run and the file, press Separate."""
    browser.get(base)
    wait_for(browser, lambda driver: driver.find_elements("css selector", f"#model option[value='{run_name}']"),
             "the models never appeared")
    browser.execute_script("arguments[0].value = arguments[1]", browser.find_element("id", "model"), run_name)
    browser.find_element("id", "file").send_keys(str(song))
    browser.find_element("id", "submit").click()


def test_a_song_separated_in_the_browser_plays_and_downloads(server, browser, tmp_path, artefacts, run_name):
    base, jobs = server
    song = write_song(tmp_path / "browser song.wav", seconds=2.0)
    submit(browser, base, run_name, song)
    card = wait_for(browser, lambda driver: driver.find_element("css selector", "article.job[data-status='done']")
                    if driver.find_elements("css selector", "article.job[data-status='done']") else False,
                    "the job did not finish")
    players = card.find_elements("css selector", "audio")
    assert [player.get_attribute("data-stem") for player in players] == ["mixture", "vocals", "rest"]
    state = """
        const done = arguments[arguments.length - 1];
        const players = [...arguments[0].querySelectorAll('audio')];
        const ready = () => players.every((player) => player.readyState >= 2 || player.error);
        const report = () => done(players.map((player) => ({stem: player.dataset.stem, ready: player.readyState,
            error: player.error && player.error.code, duration: player.duration})));
        const check = () => ready() ? report() : setTimeout(check, 50);
        players.forEach((player) => player.load());
        check();
    """
    for player in browser.execute_async_script(state, card):
        assert player["error"] is None and player["ready"] >= 2, player
        assert player["duration"] == pytest.approx(2.0, abs=0.05), player
    assert len(card.find_elements("css selector", "canvas.waveform")) == 3
    assert "done" in card.find_element("css selector", ".status").text

    link = card.find_elements("css selector", "a.download")[1]
    name = link.get_attribute("download")
    assert name == "browser_song_vocals.wav"
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as answer:
        downloaded = answer.read()
    job = card.get_attribute("data-job")
    assert downloaded == (jobs / job / "files" / name).read_bytes()
    browser.save_screenshot(str(artefacts / "separate.png"))


def test_a_file_that_is_not_audio_is_refused_in_the_page(server, browser, tmp_path, artefacts, run_name):
    base, jobs = server
    before = set(jobs.iterdir())
    notes = tmp_path / "notes.wav"
    notes.write_text("a shopping list, not a song\n" * 100)
    submit(browser, base, run_name, notes)
    message = wait_for(browser, lambda driver: driver.find_element("id", "form-error").text, "no error was shown")
    assert "'notes.wav' is not audio" in message, message
    assert set(jobs.iterdir()) == before
    browser.save_screenshot(str(artefacts / "separate-refused.png"))


def test_the_runs_page_draws_the_loss_curve_and_follows_a_training(server, browser, runs_folder, artefacts,
                                                                   run_name):
    base, _ = server
    live = runs_folder / f"{run_name}-copy"
    browser.get(f"{base}runs?run={live.name}")
    chart = wait_for(browser, lambda driver: driver.find_element("id", "loss-chart")
                     if driver.find_elements("css selector", "#loss-chart g.series path") else False,
                     "the loss curve was not drawn")
    assert chart.get_attribute("data-epochs") == "1"
    assert browser.find_elements("css selector", ".evaluation-table tbody tr")
    wait_for(browser, lambda driver: all(image.get_attribute("naturalWidth") not in (None, "0")
                                         for image in driver.find_elements("css selector", "#plots img")),
             "the plots did not load")
    with (live / "results.csv").open("a", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        for epoch in (2, 3, 4):
            writer.writerow([epoch, 0.02 / epoch, 0.5, 0.3])
    started = time.monotonic()
    wait_for(browser, lambda driver: driver.find_element("id", "loss-chart").get_attribute("data-epochs") == "4",
             "new epochs did not appear without reloading")
    assert time.monotonic() - started < 5
    assert len(browser.find_elements("css selector", "#loss-chart g.series circle")) == 4
    rows = browser.find_elements("css selector", "#runs-table tbody tr")
    assert {row.get_attribute("data-run") for row in rows} >= {run_name, live.name}
    browser.save_screenshot(str(artefacts / "runs.png"))


def test_two_runs_compared_on_one_chart(server, browser, artefacts, run_name):
    base, _ = server
    browser.get(f"{base}runs/compare?a={run_name}&b={run_name}-copy")
    wait_for(browser, lambda driver: len(driver.find_elements("css selector", "#loss-chart g.series")) == 2,
             "both loss curves were not drawn")
    groups = browser.find_elements("css selector", "#loss-chart g.series")
    labels = [group.get_attribute("data-label") for group in groups]
    assert labels == ["A loss", "B loss"]
    assert len(browser.find_elements("css selector", ".side-by-side .evaluation-table")) == 2
    browser.save_screenshot(str(artefacts / "compare.png"))


def test_the_server_survives_bad_requests(server, run_name):
    base, _ = server
    for path in (f"api/runs/{run_name}/plots/%2e%2e", "api/separations/..%2Fx", "api/runs/nothing"):
        try:
            urllib.request.urlopen(base + path, timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code in (400, 404) and b'"error"' in error.read()
        else:
            raise AssertionError(f"{path} was answered")
    with urllib.request.urlopen(base + "api/runs", timeout=10) as answer:
        assert answer.status == 200
