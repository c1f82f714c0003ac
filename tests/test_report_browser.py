"""The report in a real browser: headless Chromium, network blocked, driven over the DevTools protocol.

The protocol runs over `--remote-debugging-pipe` (NUL-separated JSON on file descriptors 3 and 4), so only the
standard library is needed: no websocket client, no Playwright, no browser download.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_report import ALL_FIGURES, build_fixture, read_input

from conftest import REPO
from mrdtrack.report import ReportSettings, write_report

pytestmark = pytest.mark.external

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--window-size=1360,900",
    # Belt and braces next to the request interception below: no name resolves, no proxy answers.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
]  # fmt: skip
ARTIFACTS = REPO / "tests" / "artifacts"
N_PATIENTS = 24


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the browser check needs it")
    return path


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, executable: str, profile: Path, log_file: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # the browser reads commands on fd 3 and answers on fd 4
            # Copy first: a pipe end may itself be fd 3 or 4, and dup2 onto itself keeps close-on-exec.
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._log = log_file.open("wb")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, "--remote-debugging-pipe", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, preexec_fn=wire_pipes, close_fds=False,
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.handlers: list[Callable[[dict[str, Any]], None]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))

    def post(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        """Send one command without waiting for its answer; return its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result, dispatching the events that arrive meanwhile."""
        command = self.post(method, params, session)
        while True:
            reply = self._next(timeout=30)
            if reply.get("id") == command:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _next(self, timeout: float) -> dict[str, Any]:
        message = self._messages.get(timeout=timeout)
        if "method" in message:
            self.events.append(message)
            for handler in self.handlers:
                handler(message)
        return message

    def wait_for(self, method: str, since: int = 0, timeout: float = 30) -> dict[str, Any]:
        """The first `method` event at or after index `since` of `events`, waiting for it if needed."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.events[since:] if e["method"] == method), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            with contextlib.suppress(queue.Empty):
                self._next(timeout=max(0.05, deadline - time.monotonic()))

    def pump(self, seconds: float) -> None:
        """Handle events for a while (request interception must keep answering)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self._next(timeout=left)
            except queue.Empty:
                return

    def close(self) -> None:
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self._log.close()


INSPECT = """(() => {
  const figures = Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    id: gd.id,
    rendered: !!gd._fullLayout,
    mainSvg: gd.querySelectorAll('.main-svg').length,
    traces: (gd.data || []).length,
    points: (gd.calcdata || []).reduce((n, trace) => n + trace.length, 0),
    drawn: gd.querySelectorAll('g.trace, g.hm, image').length,
    height: Math.round(gd.getBoundingClientRect().height),
  }));
  const swimmer = document.getElementById('fig-swimmer');
  const lanes = swimmer && swimmer.data.find(t => t.meta === 'lanes');
  return {
    figures,
    lanes: lanes ? new Set(Array.from(lanes.y)).size : null,
    laneTicks: swimmer
      ? new Set(Array.from(swimmer.querySelectorAll('.ytick text')).map(t => t.textContent)).size : null,
    downloads: document.querySelectorAll('a.tsv').length,
    notEstimable: document.querySelectorAll('.not-estimable').length,
  };
})()"""

CLICK_SORT_BY_TIME = """(() => {
  const gd = document.getElementById('fig-swimmer');
  const buttons = gd.querySelectorAll('.updatemenu-button');
  buttons[1].dispatchEvent(new MouseEvent('click', {bubbles: true}));
  return true;
})()"""


# The highest sample of any patient (samples at TF 0 share the plotting floor), scrolled into view: where a
# reader's mouse would hover it.
PATIENT_POINT = """(() => {
  const gd = document.getElementById('fig-trajectories');
  gd.scrollIntoView();
  const points = Array.from(gd.querySelectorAll('g.trace.scatter'))
    .filter(g => g.__data__[0].trace.meta === 'patient')
    .flatMap(g => Array.from(g.querySelectorAll('path.point'))
      .map(p => ({patient: g.__data__[0].trace.name, box: p.getBoundingClientRect()})));
  const top = points.reduce((a, b) => (b.box.top < a.box.top ? b : a));
  return {patient: top.patient, x: top.box.left + top.box.width / 2, y: top.box.top + top.box.height / 2};
})()"""
HIGHLIGHT_STATE = """(() => {
  const gd = document.getElementById('fig-trajectories');
  const groups = Array.from(gd.querySelectorAll('g.trace.scatter'));
  return {highlighted: gd.getAttribute('data-highlighted'),
          faded: groups.filter(g => g.style.opacity === '0.12').length,
          thick: groups.filter(g => g.classList.contains('highlighted')).length};
})()"""


# The first screen as the reader sees it on opening the page: where the answer's table and figure are, and what
# its cells say.
FIRST_SCREEN = """(() => {
  window.scrollTo(0, 0);
  const table = document.querySelector('#panel-answer table.answer');
  const figure = document.getElementById('fig-answer');
  const cells = Array.from(table.querySelectorAll('td[data-status]')).map(td => ({
    cohort: td.dataset.cohort, status: td.dataset.status, value: td.dataset.value || '', n: td.dataset.n || '',
    text: td.textContent,
  }));
  return {tableBottom: table.getBoundingClientRect().bottom, figureTop: figure.getBoundingClientRect().top,
          viewport: window.innerHeight, cells};
})()"""
# The forest plot's axes as drawn: the tick labels along the top and along the bottom.
FOREST_AXES = """(() => {
  const gd = document.getElementById('fig-forest');
  const labels = cls => Array.from(gd.querySelectorAll('g.' + cls + ' text')).map(t => t.textContent);
  return {bottom: labels('xtick'), top: labels('x2tick')};
})()"""
# At a 1024-pixel window: the flagged-samples table within its box, and no page wider than the window.
NARROW = """(() => {
  const table = document.querySelector('#panel-flagged table');
  return {table: table.scrollWidth, box: table.parentElement.clientWidth,
          page: document.documentElement.scrollWidth, window: window.innerWidth,
          rows: table.querySelectorAll('tbody tr').length};
})()"""


def _hover_a_patient(chrome: DevTools, session: str) -> dict[str, Any]:
    """Move the mouse onto a patient's sample, then away; the trajectory highlight before and after."""
    point = _evaluate(chrome, session, PATIENT_POINT)
    for name, (x, y) in (("on", (point["x"], point["y"])), ("off", (5, 5))):
        chrome.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=session)
        chrome.pump(0.5)
        point[name] = _evaluate(chrome, session, HIGHLIGHT_STATE)
    return point


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    executable = _chromium()
    folder = tmp_path_factory.mktemp("browser")
    cohort = build_fixture(folder / "results", n_patients=N_PATIENTS, samples_per_patient=6)
    assert (read_input(cohort.inputs.calls)["flags"] != "").any()  # the flagged-samples table is drawn
    page = folder / "report" / "mrd_report.html"
    settings = ReportSettings(study_name="STOP-HER2 (synthetic test cohort)", report_date="2024-05-01")
    report = write_report(cohort.inputs, page, folder / "report" / "figures", settings)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome = DevTools(executable, folder / "profile", ARTIFACTS / "chromium.log")
    try:
        yield _drive(chrome, page, report) | {"survival": cohort.folder / "survival"}
    finally:
        chrome.close()


def _drive(chrome: DevTools, page: Path, report: Any) -> dict[str, Any]:
    blocked: list[str] = []
    target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def intercept(event: dict[str, Any]) -> None:
        if event["method"] != "Fetch.requestPaused":
            return
        url, request_id = event["params"]["request"]["url"], event["params"]["requestId"]
        allowed = url.startswith(("file:", "data:"))
        if not allowed:
            blocked.append(url)
        if allowed:
            chrome.post("Fetch.continueRequest", {"requestId": request_id}, session)
        else:
            chrome.post(
                "Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"}, session
            )

    chrome.handlers.append(intercept)
    for domain in ("Page", "Runtime", "Log", "Network"):
        chrome.send(f"{domain}.enable", session=session)
    chrome.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session=session)
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": 1360, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)  # fmt: skip
    started = time.monotonic()
    since = len(chrome.events)
    chrome.send("Page.navigate", {"url": page.as_uri()}, session=session)
    chrome.wait_for("Page.loadEventFired", since, timeout=60)
    state = _wait_rendered(chrome, session)
    load_seconds = time.monotonic() - started
    first_screen = _evaluate(chrome, session, FIRST_SCREEN)
    forest_axes = _evaluate(chrome, session, FOREST_AXES)
    screenshots = _screenshots(chrome, session, state)
    hover = _hover_a_patient(chrome, session)
    chrome.send("Runtime.evaluate", {"expression": CLICK_SORT_BY_TIME}, session=session)
    chrome.pump(1.0)
    order = _evaluate(
        chrome, session, "document.getElementById('fig-swimmer')._fullLayout.yaxis.categoryarray"
    )
    expected = next(s for s in report.sections if s.key == "swimmer").figure.layout.updatemenus[0].buttons[1]
    narrow = _at_width(chrome, session, 1024)
    return {
        "first_screen": first_screen, "forest_axes": forest_axes, "narrow": narrow,
        "state": state, "blocked": blocked, "events": list(chrome.events), "screenshots": screenshots,
        "load_seconds": load_seconds, "sorted_order": order, "hover": hover,
        "expected_order": list(expected.args[0]["yaxis.categoryarray"]), "page": page,
    }  # fmt: skip


def _at_width(chrome: DevTools, session: str, width: int) -> dict[str, Any]:
    """The page at a narrower window (responsive figures relayout), measured and photographed."""
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)  # fmt: skip
    # The responsive figures relayout on the resize, later on a loaded host: wait for the page to settle (or for
    # the deadline, after which the measurement shows what did not fit).
    deadline = time.monotonic() + 30
    chrome.pump(1.5)
    measured = _evaluate(chrome, session, NARROW)
    while measured["page"] > width and time.monotonic() < deadline:
        chrome.pump(0.5)
        measured = _evaluate(chrome, session, NARROW)
    box = _evaluate(chrome, session, f"{SECTION_BOX}('panel-flagged')")
    measured["screenshot"] = _shoot(chrome, session, f"report_flagged_{width}.png", box)
    _evaluate(chrome, session, "window.scrollTo(0, 0)")
    chrome.pump(0.3)
    _shoot(chrome, session, f"report_top_{width}.png", None)
    return measured


def _evaluate(chrome: DevTools, session: str, expression: str) -> Any:
    result = chrome.send(
        "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
    )
    if "exceptionDetails" in result:
        raise RuntimeError(result["exceptionDetails"])
    return result["result"].get("value")


def _wait_rendered(chrome: DevTools, session: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = _evaluate(chrome, session, INSPECT)
        if state["figures"] and all(f["rendered"] and f["mainSvg"] for f in state["figures"]):
            chrome.pump(0.5)  # let responsive relayouts settle before the screenshots
            return _evaluate(chrome, session, INSPECT)
        if time.monotonic() > deadline:
            return state
        chrome.pump(0.25)


SECTION_BOX = """(id => {
  const r = document.getElementById(id).closest('section').getBoundingClientRect();
  return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};
})"""


def _screenshots(chrome: DevTools, session: str, state: dict[str, Any]) -> dict[str, Path]:
    """The first screen, each figure's section, and the whole page, as PNGs under tests/artifacts/."""
    shots = {"top": _shoot(chrome, session, "report_top.png", None)}
    for figure in state["figures"]:
        box = _evaluate(chrome, session, f"{SECTION_BOX}({json.dumps(figure['id'])})")
        name = figure["id"].removeprefix("fig-")
        shots[name] = _shoot(chrome, session, f"report_{name}.png", box)
    height = _evaluate(chrome, session, "document.documentElement.scrollHeight")
    shots["full"] = _shoot(
        chrome, session, "report_full.png", {"x": 0, "y": 0, "width": 1360, "height": height}
    )
    return shots


def _shoot(chrome: DevTools, session: str, name: str, clip: dict[str, float] | None) -> Path:
    params: dict[str, Any] = {"format": "png"}
    if clip:
        params |= {"clip": {**clip, "scale": 1}, "captureBeyondViewport": True}
    data = chrome.send("Page.captureScreenshot", params, session=session)["data"]
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(data))
    return path


# ---------------------------------------------------------------------------------------------------- tests


def test_no_console_errors(browser_run: dict[str, Any]):
    errors = []
    for event in browser_run["events"]:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append([a.get("value", a.get("description")) for a in params.get("args", [])])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    assert errors == []


def test_no_network_request(browser_run: dict[str, Any]):
    urls = [
        e["params"]["request"]["url"]
        for e in browser_run["events"]
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert browser_run["blocked"] == []
    assert [u for u in urls if not u.startswith("data:")] == [browser_run["page"].as_uri()]


def test_every_figure_renders_with_data(browser_run: dict[str, Any]):
    figures = {f["id"].removeprefix("fig-"): f for f in browser_run["state"]["figures"]}
    assert set(figures) == ALL_FIGURES
    for key, figure in figures.items():
        assert figure["rendered"] and figure["mainSvg"] >= 1, key
        assert figure["traces"] >= 1 and figure["points"] >= 1 and figure["drawn"] >= 1, (key, figure)
        assert figure["height"] >= 200, (key, figure)


def test_swimmer_lanes_match_patients_and_sort_button_works(browser_run: dict[str, Any]):
    state = browser_run["state"]
    assert state["lanes"] == N_PATIENTS and state["laneTicks"] == N_PATIENTS
    assert browser_run["sorted_order"] == browser_run["expected_order"]


def test_hovering_a_trajectory_brings_its_patient_forward(browser_run: dict[str, Any]):
    hover = browser_run["hover"]
    assert hover["on"] == {"highlighted": hover["patient"], "faded": N_PATIENTS - 1, "thick": 1}
    # leaving the point restores every line
    assert hover["off"] == {"highlighted": "", "faded": 0, "thick": 0}


def test_downloads_present_and_page_renders_fast(browser_run: dict[str, Any]):
    assert browser_run["state"]["downloads"] >= len(ALL_FIGURES)
    assert browser_run["load_seconds"] < 30


def test_screenshots_saved(browser_run: dict[str, Any]):
    for path in browser_run["screenshots"].values():
        assert path.stat().st_size > 10_000, path


def test_static_images_with_kaleido_and_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """report.static_formats: kaleido (>= 1.0, optional) drives the system Chromium to write PNG and SVG."""
    kaleido = pytest.importorskip("kaleido", reason="kaleido is optional (pip install kaleido)")
    if not hasattr(kaleido, "calc_fig"):  # the 1.x API; kaleido 0.2 bundled its own browser
        pytest.skip("kaleido < 1.0 does not use the system Chromium")
    monkeypatch.setenv("BROWSER_PATH", os.environ.get("BROWSER_PATH") or _chromium())
    cohort = build_fixture(tmp_path / "results", n_patients=6, samples_per_patient=3)
    settings = ReportSettings(static_formats=("png", "svg"), report_date="2024-05-01")
    with caplog.at_level("WARNING"):
        report = write_report(cohort.inputs, tmp_path / "r.html", tmp_path / "figures", settings)
    assert "static export skipped" not in caplog.text
    for section in report.sections:
        if section.figure is None:
            continue
        png, svg = tmp_path / "figures" / f"{section.key}.png", tmp_path / "figures" / f"{section.key}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000, section.key
        assert "<svg" in svg.read_text()[:500] and section.title in svg.read_text(), section.key


def test_the_first_screen_shows_the_answer_table_and_the_curves(browser_run: dict[str, Any]):
    screen = browser_run["first_screen"]
    assert screen["tableBottom"] <= screen["viewport"]  # the whole table without scrolling
    assert screen["figureTop"] < screen["viewport"]  # and the curves start on the same screen


def test_first_screen_numbers_equal_the_survival_tables(browser_run: dict[str, Any]):
    cells = {(c["cohort"], c["status"]): c for c in browser_run["first_screen"]["cells"]}
    pfs = read_input(str(browser_run["survival"] / "safe_to_stop.tsv")).query("timepoint == 'baseline'")
    for row in pfs[pfs["n"] != "0"].itertuples():
        cell = cells[(row.cohort, row.mrd_status)]
        assert (cell["value"], cell["n"]) == (row.km_pfs_1y, row.n)
        assert cell["text"].startswith(f"{round(100 * float(row.km_pfs_1y))}%")
        assert f"n = {row.n}" in cell["text"]
    accuracy = read_input(str(browser_run["survival"] / "safe_to_stop_accuracy.tsv"))
    for row in accuracy.query("timepoint == 'baseline'").itertuples():
        cell = cells[(row.cohort, "npv")]
        assert cell["value"] == row.npv and cell["text"].startswith(f"{round(100 * float(row.npv))}%")
        assert (
            f"{row.true_negative} of {int(row.true_negative) + int(row.false_negative)} evaluable"
            in cell["text"]
        )
    assert {cohort for cohort, _ in cells} == {"continue", "stop", "all"}


def test_the_forest_plot_has_its_axis_at_the_top_too(browser_run: dict[str, Any]):
    axes = browser_run["forest_axes"]
    assert axes["top"] and axes["top"] == axes["bottom"] and "1" in axes["top"]


def test_the_flagged_samples_table_fits_a_1024_pixel_window(browser_run: dict[str, Any]):
    narrow = browser_run["narrow"]
    assert narrow["rows"] >= 1
    assert narrow["table"] <= narrow["box"], narrow  # no sideways scrolling inside the table's box
    assert narrow["page"] <= narrow["window"], narrow  # nor of the page
    assert narrow["screenshot"].stat().st_size > 10_000
