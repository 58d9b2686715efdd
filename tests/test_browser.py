"""The chat app in a real browser: `main.py --mode interact` started as users start it, talking to a real vLLM CPU
server, driven in Debian's Chromium through Playwright. The served model is conftest's tiny Gemma trained on a
few rows, so a question from those rows gets the model's own SQL, and that SQL's result table."""

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ENDLESS_ROW, ROOT, SUBPROCESS_ENV, free_port, skip_or_fail

from sandbox import default_sandbox
from scoring import execute

pytestmark = [pytest.mark.browser, pytest.mark.vllm]
INTERACT_CONFIG = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql" / "interact.yaml"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright never downloads a browser here
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
APP_START_TIMEOUT_S = 180  # importing trl and gradio on a busy 2-core machine
WAIT_MS = 30_000
BOT = '#chat [data-testid="bot"]'
CELLS = '#table [role="gridcell"]'
# Records the length of the latest answer at every change the page renders, to see it grow token by token.
RECORD_ANSWER_LENGTHS = """() => {
    window.answerLengths = [];
    new MutationObserver(() => {
        const answers = document.querySelectorAll('#chat [data-testid="bot"]');
        if (answers.length) window.answerLengths.push(answers[answers.length - 1].innerText.length);
    }).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
}"""


def app_answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def running_app(dataset, api_base, log_path):
    """`main.py --config interact.yaml` on a free port; yields its URL and stops it afterwards."""
    port = free_port()
    # A long token limit keeps the endless answer going for seconds, time enough to press stop.
    command = [sys.executable, str(ROOT / "main.py"), "--config", str(INTERACT_CONFIG), "--dataset_name", str(dataset),
               "--openai_api_base", api_base, "--port", str(port), "--chat_max_tokens", "700"]
    with open(log_path, "w") as log:
        app = subprocess.Popen(command, cwd=ROOT, env=SUBPROCESS_ENV, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not app_answers(url):
            assert app.poll() is None, f"the app exited with {app.returncode}:\n{Path(log_path).read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the app did not answer in {APP_START_TIMEOUT_S} s"
            time.sleep(0.5)
        yield url
    finally:
        app.terminate()
        app.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(sql_dataset, sql_server, tmp_path_factory):
    with running_app(sql_dataset, sql_server, tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def app_without_server_url(sql_dataset, tmp_path_factory):
    down = f"http://127.0.0.1:{free_port()}/v1"  # a real closed port
    with running_app(sql_dataset, down, tmp_path_factory.mktemp("app-down") / "app.log") as url:
        yield url, down


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.is_file():
        skip_or_fail(f"{CHROMIUM} not found: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed: uv sync (it is in the dev group)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)  # assertions keep their own 5 s default otherwise, too short on a busy CI
    yield page
    page.close()


def open_app(page, url):
    page.goto(url)
    page.locator("#msg textarea").wait_for()  # Gradio builds the page after it loads


def ask(page, question, schema=None):
    if schema is not None:
        page.locator("#schema textarea").fill(schema)
    page.locator("#msg textarea").fill(question)
    page.locator("#msg textarea").press("Enter")


def expect_cells(page, rows):
    from playwright.sync_api import expect

    expect(page.locator(CELLS)).to_have_text([str(value) for row in rows for value in row])


def gold_rows(row):
    return execute(row["sql_context"], row["sql"], default_sandbox()).rows


@pytest.fixture
def factories(sql_rows):
    return next(row for row in sql_rows if row["id"] == 48)  # a two-row result


def test_a_question_with_a_schema_streams_its_answer_then_its_result_table(page, app_url, factories):
    from playwright.sync_api import expect

    open_app(page, app_url)
    page.evaluate(RECORD_ANSWER_LENGTHS)
    ask(page, factories["sql_prompt"], factories["sql_context"])
    expect_cells(page, gold_rows(factories))
    answer = page.locator(BOT).last
    expect(answer).to_contain_text("Result: 2 rows, in the table below.")
    expect(answer).to_contain_text("COUNT(*) AS factory_count")
    lengths = page.evaluate("window.answerLengths")
    assert len(set(lengths)) >= 3, lengths  # the answer was shown growing, not all at once
    page.get_by_role("button", name="Clear").click()  # Clear empties the chat and hides the table
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator("#table")).to_be_hidden()


def test_the_stop_button_stops_a_running_answer_and_the_next_question_works(page, app_url, factories):
    from playwright.sync_api import expect

    open_app(page, app_url)
    ask(page, ENDLESS_ROW["sql_prompt"], ENDLESS_ROW["sql_context"])
    answer = page.locator(BOT).last
    expect(answer).to_contain_text("UNION ALL")
    page.locator("#msg .stop-button").click()
    expect(page.locator("#msg .stop-button")).to_be_hidden()
    stopped_at = answer.inner_text()
    time.sleep(1)
    assert answer.inner_text() == stopped_at and "token limit" not in stopped_at  # it ended early, not at the limit
    page.get_by_text(factories["sql_prompt"]).first.click()  # an example fills the question and the schema
    expect(page.locator("#msg textarea")).to_have_value(factories["sql_prompt"])
    page.locator("#msg textarea").press("Enter")
    expect_cells(page, gold_rows(factories))


def test_a_server_that_is_down_is_named_in_the_chat_and_the_app_keeps_working(page, app_without_server_url):
    from playwright.sync_api import expect

    url, down = app_without_server_url
    open_app(page, url)
    for turn in (1, 2):
        ask(page, "How many rows are there?", "CREATE TABLE t (id INT); INSERT INTO t VALUES (1);")
        expect(page.locator(BOT)).to_have_count(turn)
        expect(page.locator(BOT).last).to_contain_text(f"No model server answers at {down}")
    expect(page.locator("#msg textarea")).to_be_editable()
