"""report.html in a real headless Chromium: load it from disk, click into a candidate and a rollout,
and check the trace text is shown. Screenshots go to test-artifacts/ (gitignored).

Needs the Debian packages chromium and chromium-driver and the Python package selenium
(`pip install -e '.[test]'`); skipped with the reason otherwise.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from harnessopt.report import write_report
from test_report import HOSTILE, MARKER, make_experiment

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="needs headless Chromium: apt-get install chromium chromium-driver"),
]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="harnessopt-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_report_html_browses_candidates_and_traces(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    result = make_experiment(tmp_path)
    page = write_report(result.experiment_dir)["html"]
    wait = WebDriverWait(browser, 20)
    ARTIFACTS.mkdir(exist_ok=True)

    browser.get(page.resolve().as_uri())
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "Between arms"))
    body = browser.find_element(By.TAG_NAME, "main").text
    assert "traces-A-A beats scores-A-A" in body
    browser.save_screenshot(str(ARTIFACTS / "report_experiment.png"))

    # experiment -> a run -> its candidates -> the promoted candidate's diff
    browser.find_element(By.XPATH, "//td[text()='traces-A-A-seed0']").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Run traces-A-A-seed0"))
    browser.find_element(By.CSS_SELECTOR, "[data-testid=tab-cands]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=cand-c0001]"))).click()
    detail = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=candidate-detail]")))
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=candidate-detail] h1"), "c0001"))
    assert "double instead of echo, except for 3" in detail.text
    assert 'verb = "echo " if task.input == "3"' in detail.find_element(By.CSS_SELECTOR, "pre.diff").text
    browser.save_screenshot(str(ARTIFACTS / "report_candidate.png"))

    # the seed candidate -> its rollout on search-7 -> the full trace
    browser.find_element(By.CSS_SELECTOR, "[data-testid=cand-c0000]").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=candidate-detail] h1"), "c0000"))
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=cand-rollouts] [data-testid=rollout-row]")
    assert len(rows) >= 20
    next(r for r in rows if "search-7" in r.text.split()).click()
    trace = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=trace]")))
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=trace] h1"), "search-7"))
    text = trace.text
    assert f"{MARKER} seen 7" in text  # the harness's log line
    assert "echo 7" in text and "expected '14', got '7'" in text  # the model call's prompt and the scorer's verdict
    assert HOSTILE in text  # shown as text ...
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src=x]")  # ... never run as markup
    browser.save_screenshot(str(ARTIFACTS / "report_trace.png"))

    # full-text search over every trace of the run, with highlights
    box = browser.find_element(By.CSS_SELECTOR, "[data-testid=search]")
    box.clear()
    box.send_keys("seen 7", Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=all-rollouts]")))
    hits = browser.find_elements(By.CSS_SELECTOR, "[data-testid=all-rollouts] [data-testid=rollout-row]")
    assert hits and all("7" in h.text for h in hits)
    hits[0].click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=trace] mark")))
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=trace] mark").text.lower() == "seen 7"

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
