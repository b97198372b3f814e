"""`harness site`: the rows and files a fixture set gives, a hostile package, and the pages in a real browser
(the distribution's Chromium, driven by Selenium)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import chromium_driver, make_run, write_run

from harness.cli import main
from harness.results.files import sha256_file
from harness.results.schema import Component

# (system's CPU, how its energy was obtained, energy of dense-tiny and switch-tiny to target in J)
SYSTEMS = {"Alpha CPU 9000": ("measured", 300.0, 100.0), "Beta CPU 7": ("modelled", 500.0, 90.0),
           "Gamma Xeon 5": ("measured", 400.0, 120.0)}


def _run(cpu: str, workload: str, seed: int, energy: float, how: str):
    r = make_run(workload, seed=seed, run_id=f"{cpu.split()[0].lower()}-{workload}-{seed}", energy_j=energy + seed,
                 method="modelled:cpu-tdp-utilization" if how == "modelled" else "measured:external-command")
    hw = replace(r.environment.hardware, cpu_model=cpu)
    if how == "measured":
        node = {"external/node": Component(joules=energy + seed, init_joules=1.0, method="measured:external-command",
                                           scope="node", part="node")}
        r = replace(r, energy=replace(r.energy, components=node, node_j=energy + seed))
    return replace(r, environment=replace(r.environment, hardware=hw))


def build_fixture(root: Path) -> Path:
    """Three systems x two workloads x three seeds, each run with a power trace; and a claim citing two runs."""
    for cpu, (how, dense, switch) in SYSTEMS.items():
        for workload, energy in (("dense-tiny", dense), ("switch-tiny", switch)):
            for seed in range(3):
                r = _run(cpu, workload, seed, energy, how)
                folder = root / "runs" / r.run_id
                folder.mkdir(parents=True)
                with open(folder / "power.csv", "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["time_unix_s", next(iter(r.energy.components)) + "_w"])
                    w.writerows([[1001.0 + 0.5 * k, 50.0 + k % 3] for k in range(24)])
                write_run(folder, replace(r, files={"power.csv": sha256_file(folder / "power.csv")}))
    (root / "claims").mkdir()
    (root / "claims" / "claim.json").write_text(json.dumps({
        "schema": "harness.claim/1", "verdict": "SUPPORTED", "text": "Alpha needs less energy than Gamma",
        "metric": {"name": "energy_to_target"}, "reasons": [],
        "runs": {"subject": [{"run_id": "alpha-switch-tiny-0"}], "baseline": [{"run_id": "gamma-switch-tiny-0"}]}}))
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    build_fixture(root / "in")
    assert main(["site", str(root / "in"), "--output-dir", str(root / "site")]) == 0
    return root / "site"


def test_rows_summary_and_pages(site):
    summary = json.loads((site / "summary.json").read_text())["rows"]
    assert len(summary) == 6  # one a (system, workload, framework)
    row = next(r for r in summary
               if r["host_processor_model_name"] == "Alpha CPU 9000" and r["benchmark"] == "dense-tiny")
    assert row["energy_to_train_j"] == pytest.approx(301.0)  # olympic: the middle of 300, 301, 302
    assert row["energy_method"] == "measured" and row["runs"] == 3 and row["converged"] == 3
    assert row["time_to_train"] == pytest.approx(10.0 / 60)  # minutes, as MLCommons' summarizer prints it
    beta = next(r for r in summary if r["host_processor_model_name"] == "Beta CPU 7")
    assert beta["energy_method"] == "modelled"
    with open(site / "summary.csv") as f:
        header = next(csv.reader(f))
    assert header[:8] == ["division", "availability", "submitter", "system", "number_of_nodes",
                          "host_processor_model_name", "host_processors_count", "accelerator_model_name"]
    index = (site / "index.html").read_text()
    assert index.count("<tr data-workload=") == 6 and "Alpha needs less energy than Gamma" in index
    assert (site / "index.html").stat().st_size < 1_000_000
    pages = sorted(site.glob("systems/*/index.html"))
    assert len(pages) == 3
    run = next(site.glob("systems/*/runs/*/result.json"))
    assert (run.parent / "power.csv").is_file() and (run.parent / "loss.svg").is_file()
    assert "Dense ÷ sparse energy" in index and "2.98x" in index  # Alpha: 300/100, 301/101, 302/102 by seed


def test_rows_keep_corpora_and_specs_apart_and_a_repeated_seed_counts_twice():
    from harness.report.site.collect import SiteRun, Source, System
    from harness.report.site.rows import dense_sparse_pairs, rows_of

    system, source = System("unpackaged", "m"), Source(Path("."), "run", Path("."))
    runs = [make_run(w, seed=seed, run_id=f"{w}-{corpus}-{seed}-{k}", corpus=corpus, energy_j=e * (1 + 0.01 * k))
            for w, corpus, e in (("dense-tiny", "default", 400.0), ("switch-tiny", "default", 100.0),
                                 ("dense-tiny", "control", 10.0), ("switch-tiny", "control", 20.0))
            for seed in (0, 1) for k in (0, 1)]  # each seed run twice
    wider = make_run("switch-tiny", run_id="wider", seed=0)
    wider = replace(wider, spec={**wider.spec, "model": {**wider.spec["model"], "d_model": 64}})
    rows = rows_of([SiteRun(r, system, source, {}) for r in [*runs, wider]])
    names = sorted(row.benchmark for row in rows)
    # Two specs of one workload, apart: the registered one by its name, the other with its spec's hash.
    assert names[:4] == ["dense-tiny", "dense-tiny (control corpus)", "switch-tiny", "switch-tiny (control corpus)"]
    assert len(names) == 5 and names[4].startswith("switch-tiny (spec ")
    pairs = dense_sparse_pairs(rows)
    assert sorted(p.dense.benchmark for p in pairs) == ["dense-tiny"] * 2 + ["dense-tiny (control corpus)"]
    (control,) = [p for p in pairs if p.dense.data]
    assert control.ci.ratio == pytest.approx(0.5, rel=0.02)  # never the default corpus's 4x
    assert control.ci.n == 4 and "Welch, 4 and 4 runs" in control.note  # seeds repeat: every run counts


def test_a_hostile_package_runs_nothing_and_copies_nothing_from_outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not to be published")
    org = tmp_path / "in" / "acme"
    evil = "<img src=x onerror=alert(1)>"
    (org / "systems").mkdir(parents=True)
    (org / "harness_manifest.json").write_text('{"sha256": {}}')
    (org / "systems" / f"{evil}.json").write_text(json.dumps({"division": "<script>alert(2)</script>",
                                                             "status": "available", "cooling": "<b>air</b>"}))
    harness_dir = org / "results" / evil / "switch-tiny" / "harness"
    r = make_run("switch-tiny", run_id="<script>alert(3)</script>", data={"kind": "procedural",
                 "corpus": "<script>alert(4)</script>", "eval_sha256": "0" * 64, "eval_sequences": 64},
                 files={"../../../../secret.txt": "0" * 64, "power.csv": "0" * 64})
    write_run(harness_dir, r).rename(harness_dir / "result_0.json")
    (harness_dir / "power_0.csv").symlink_to(secret)  # a trace that is a link out of the package
    (org / "results" / evil / "switch-tiny" / "result_0.txt").symlink_to(secret)
    (tmp_path / "in" / "claim.json").write_text(json.dumps({"schema": "harness.claim/1", "text": "<iframe>",
                                                           "verdict": "<script>x()</script>", "runs": {}}))
    assert main(["site", str(tmp_path / "in"), "--output-dir", str(tmp_path / "site")]) == 0
    html = "\n".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    for raw in ("<script>alert", "<img src=x", "<b>air</b>", "<iframe>", "<script>x()"):
        assert raw not in html, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(3)&lt;/script&gt;" in html
    copied = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    assert not any(p.read_bytes() == secret.read_bytes() for p in copied)
    assert not any(p.is_symlink() for p in (tmp_path / "site").rglob("*"))


def test_chart_colours_do_not_repeat_within_a_chart():
    import re

    from harness.report.site import svg

    points = [(f"workload {i}, system {i}", 1.0 + i, 10.0 + i, "measured") for i in range(25)]
    chart = svg.scatter(points, "t", "x", "y")
    fills = re.findall(r'<g><title>[^<]*</title><circle [^>]*fill="([^"]+)"', chart)
    assert len(fills) == 25 and len(set(fills)) == 25
    series = [(f"s{i}", [0.0, 1.0], [float(i), i + 1.0]) for i in range(15)]
    strokes = re.findall(r'<polyline [^>]*stroke="([^"]+)"', svg.lines(series, "t", "x", "y"))
    assert len(strokes) == 15 and len(set(strokes)) == 15
    assert svg.palette(10) == list(svg.COLORS) and len(set(svg.palette(500))) == 500


def test_a_linear_axis_labels_its_whole_span():
    from harness.report.site.svg import Axis

    for lo, hi in ((1.0, 3.5), (0.0, 1.0), (-5.0, 5.0), (0.001, 0.0035), (0.0, 37.0), (2.0, 2.0)):
        axis = Axis([lo, hi], 0, 100, log=False)
        ticks = axis.ticks()
        assert 3 <= len(ticks) <= 11 and ticks[0] <= lo + (hi - lo) * 0.25 and ticks[-1] >= hi - (hi - lo) * 0.25


# -- in a real browser ------------------------------------------------------------------------------------------


ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


def _rows(driver) -> list:
    return [r for r in driver.find_elements("css selector", "#results-table tbody tr") if r.is_displayed()]


@pytest.mark.browser
def test_the_index_in_a_browser(site, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url = (site / "index.html").as_uri()
    browser.get_log("performance")  # drop what came before
    browser.get(url)
    assert len(_rows(browser)) == 6
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    requested = [json.loads(e["message"])["message"]["params"].get("request", {}).get("url", "")
                 for e in browser.get_log("performance")
                 if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert requested and all(u.startswith(site.as_uri() + "/") or u.startswith("data:") for u in requested), requested
    # Sorting: energy to target ascending, then descending.
    header = browser.find_elements("css selector", "#results-table thead th button")
    column = [b.text for b in header].index("Energy to target (J)")

    def energies() -> list[float]:
        return [float(r.find_elements("tag name", "td")[column].get_attribute("data-v")) for r in _rows(browser)]

    header[column].click()
    assert energies() == sorted(energies()) and energies()[0] == pytest.approx(91.0)
    header[column].click()
    assert energies() == sorted(energies(), reverse=True)
    # Filters and search reduce the rows.
    form = browser.find_element("id", "filters")
    Select(form.find_element("name", "workload")).select_by_value("switch-tiny")
    assert len(_rows(browser)) == 3
    form.find_element("name", "measured").click()
    assert len(_rows(browser)) == 2  # Beta's energy is modelled
    form.find_element("name", "q").send_keys("gamma")
    assert len(_rows(browser)) == 1 and "1 of 6 rows shown" in browser.find_element("id", "shown").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(url)
    browser.set_window_size(1400, 1000)
    browser.save_screenshot(str(ARTIFACTS / "site-desktop.png"))
    # The first screen: dense ÷ sparse and the chart side by side, whole, above the results; the page no wider
    # than the window.
    box = "return arguments[0].getBoundingClientRect().toJSON()"
    sparse, chart, results = (browser.execute_script(box, browser.find_element("css selector", css))
                              for css in ("#sparse table", "#chart svg", "#results"))
    height, width, page_width = browser.execute_script(
        "return [window.innerHeight, window.innerWidth, document.documentElement.scrollWidth]")
    assert sparse["bottom"] <= height and chart["bottom"] <= height and chart["width"] > 500, (sparse, chart)
    assert chart["left"] >= sparse["right"] and results["top"] >= max(sparse["bottom"], chart["bottom"])
    assert page_width <= width
    # The results table scrolls in its own box, the header row staying in view, when it is wider than the window.
    browser.set_window_size(900, 1000)
    wrapper = browser.find_element("css selector", "#results .box")
    assert browser.execute_script("return arguments[0].contains(document.getElementById('results-table'))", wrapper)
    assert browser.execute_script("return getComputedStyle(arguments[0]).overflowX", wrapper) == "auto"
    assert browser.execute_script("return getComputedStyle(document.querySelector('#results-table th')).position")\
        == "sticky"
    inner, outer = browser.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth]", wrapper)
    assert inner > outer  # the table is wider than its box here ...
    browser.execute_script("arguments[0].scrollLeft = 200", wrapper)
    assert browser.execute_script("return arguments[0].scrollLeft", wrapper) > 0  # ... and the box scrolls
    assert browser.execute_script("return [window.scrollX, document.documentElement.scrollWidth <= window.innerWidth]"
                                  ) == [0, True]  # ... not the page
    browser.set_window_size(390, 844)
    browser.save_screenshot(str(ARTIFACTS / "site-phone.png"))
    sparse, chart = (browser.execute_script(box, browser.find_element("css selector", css))
                     for css in ("#sparse table", "#chart svg"))
    assert chart["top"] >= sparse["bottom"]  # on a phone they stack
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.set_window_size(1400, 1000)
    # Keyboard focus reaches every control.
    controls = browser.find_elements("css selector", "#filters select, #filters input, thead button")
    body = browser.find_element("tag name", "body")
    body.click()
    reached = set()
    for _ in range(len(browser.find_elements("css selector", "a, button, select, input")) + 5):
        body.send_keys(Keys.TAB) if not reached else browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.add(browser.switch_to.active_element.id)
    assert all(c.id in reached for c in controls), [c.get_attribute("outerHTML")[:60] for c in controls
                                                   if c.id not in reached]
    # A system's page opens, and its images load.
    browser.find_element("css selector", "#results-table tbody a").click()
    WebDriverWait(browser, 10).until(lambda b: "/systems/" in b.current_url)
    assert browser.current_url.endswith("/index.html")
    images = browser.find_elements("tag name", "img")
    assert images and all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                          for i in images)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.mark.browser
def test_the_index_is_readable_without_javascript(site):
    driver = chromium_driver(javascript=False, log_network=False)
    try:
        driver.get((site / "index.html").as_uri())
        assert len(_rows(driver)) == 6
        assert not driver.find_element("id", "filters").is_displayed()  # controls that would do nothing are hidden
        assert "table below is complete without it" in driver.find_element("tag name", "body").text
    finally:
        driver.quit()
