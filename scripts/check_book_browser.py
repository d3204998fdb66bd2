"""Open every page of the built course book in headless Chromium and check it.

Usage::

    python scripts/check_book_browser.py BOOK_DIR [--screenshots DIR]

``BOOK_DIR`` is the output of ``vitoolkit book --out BOOK_DIR``. The book is served
on 127.0.0.1 (a random free port) and every HTML page is opened in Debian's
Chromium through Selenium and Debian's ``chromium-driver`` (which matches the
browser's version; ``apt-get install chromium chromium-driver``). For each page
the check asserts that

- the page loads, and the server answered no request with an error status,
- the browser logged no console error or failed load,
- every image decodes (``complete`` and ``naturalWidth > 0``),
- MathJax typeset every formula without a TeX error,
- nothing overflows horizontally (the page's ``scrollWidth`` is at most the window's width),
- on the tutorial pages, at 1280 px and at a phone's 412 px: the sidebar lists
  every lesson, nothing overflows, every heading's formula is typeset, every
  interactive (Plotly) figure rendered with data and fits the width, the claims
  are shown as callouts (a full-size claim in a quick build never struck
  through), and no ``tut.claim(`` / ``tut.record(`` code is visible before the
  reader unfolds it (problems of that kind start with ``checks visible:``); at
  1280 px each slider of an interactive figure is clicked to its first, middle
  and last step and the figure's axis ranges must not change,
- the API pages whose HTML has formulas (``class="math``) show them typeset.

It writes ``report.json`` into the book (or, with ``--screenshots DIR``, into DIR
beside a screenshot of the top of each tutorial page and the index at both widths).
Exit code 0 when every page passes, 1 when one fails, 2 when Chromium or
chromedriver is missing.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import sys
import threading
import time
from pathlib import Path

SKIP_DIRS = {"_static", "_sources", "_downloads", "_images"}
API_DIR = "generated"  # autosummary's pages: opened when they hold formulas
WIDTHS = (1280, 412)  # a laptop and a phone (CSS pixels)
#: Prefix of the problems that say a lesson's checking code shows unfolded.
CHECKS_VISIBLE = "checks visible:"
CHROMIUM_FLAGS = (
    # A closed network and a root user: no sandbox, no GPU, no background connections.
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--disable-dev-shm-usage", "--window-size=1280,900",
)

CHECK_JS = r"""
const done = arguments[arguments.length - 1];
(async () => {
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const imgs = Array.from(document.images);
  imgs.forEach((img) => { img.loading = 'eager'; });
  await Promise.race([Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener('load', r); img.addEventListener('error', r); }))), wait(15000)]);
  let mathjax = 'absent';
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await Promise.race([window.MathJax.startup.promise, wait(20000)]);
    mathjax = 'ready';
  }
  const math = Array.from(document.querySelectorAll('span.math, div.math'));
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  await wait(plots.length ? 500 : 0);
  // Shown = rendered (a box, not hidden by the browser) and not inside a closed fold.
  const folded = (el) => { const d = el.closest('details:not([open])');
                           return !!d && !el.closest('summary'); };
  const shown = (el) => el.getClientRects().length > 0 && !folded(el) &&
      (!el.checkVisibility || el.checkVisibility({visibilityProperty: true, opacityProperty: true}));
  const code = Array.from(document.querySelectorAll('div.cell_input, div.highlight'))
                    .filter((el) => !el.parentElement.closest('div.cell_input'));
  const visibleCode = (needle) => code.filter((el) => shown(el) && el.textContent.includes(needle))
                                      .slice(0, 3).map((el) => el.textContent.trim().slice(0, 80));
  const headings = Array.from(document.querySelectorAll('h1, h2, h3'));
  const headingMath = headings.filter((h) => h.querySelector('.math'));
  // The screen's width: a phone zooms out to fit a wider page, so innerWidth may exceed it.
  const W = Math.min(window.innerWidth, arguments.length > 1 ? arguments[0] : window.innerWidth);
  // The culprit of an overflow: descend into the child whose hiding removes it.
  const culprit = () => {
    const path = [];
    let el = document.body;
    for (let depth = 0; depth < 30 && el; depth++) {
      let found = null;
      for (const child of el.children) {
        const before = child.style.display;
        child.style.display = 'none';
        const fits = document.documentElement.scrollWidth <= W;
        child.style.display = before;
        if (fits) { found = child; break; }
      }
      if (!found) break;
      path.push(found.tagName.toLowerCase() + (typeof found.className === 'string' && found.className
                ? '.' + found.className.trim().split(/\s+/)[0] : ''));
      el = found;
    }
    return path.length ? [path.slice(-3).join(' > ') + ': ' +
                          (el.textContent || '').trim().slice(0, 80)] : [];
  };
  const wide = document.documentElement.scrollWidth <= W ? [] : culprit();
  const sidebar = document.querySelector('.bd-sidebar-primary');
  return {
    title: document.title,
    images: imgs.length,
    broken: imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.getAttribute('src')),
    math: math.length,
    unrendered: math.filter((n) => !n.querySelector('mjx-container'))
                    .slice(0, 5).map((n) => n.textContent.slice(0, 80)),
    texErrors: document.querySelectorAll('mjx-merror').length,
    mathjax: mathjax,
    plots: plots.length,
    plotsWithData: plots.filter((p) => p._fullData && p._fullData.length > 0 &&
                                p.querySelector('.main-svg')).length,
    plotsTooWide: plots.filter((p) => p.getBoundingClientRect().width > W).length,
    claims: document.querySelectorAll('div.vt-claim').length,
    failedClaims: document.querySelectorAll('div.vt-claim-failed').length,
    // a full-size claim in a quick build is shown neutrally: never struck through
    struckClaims: Array.from(document.querySelectorAll('div.vt-claim-unchecked, div.vt-claim-unchecked *'))
                       .filter((el) => getComputedStyle(el).textDecorationLine.includes('line-through'))
                       .length,
    width: W,
    scrollWidth: document.documentElement.scrollWidth,
    overflowing: wide,
    sidebarLinks: sidebar ? Array.from(sidebar.querySelectorAll('a[href]'))
                                 .map((a) => a.href.split('#')[0]) : [],
    sidebarShown: !!sidebar && shown(sidebar),
    headingMath: headingMath.length,
    headingMathTypeset: headingMath.filter((h) => h.querySelector('mjx-container')).length,
    headingDollars: headings.filter((h) => /\$[^$]+\$/.test(h.textContent))
                            .map((h) => h.textContent.slice(0, 80)),
    visibleClaimCode: visibleCode('tut.claim('),
    visibleRecordCode: visibleCode('tut.record('),
    sliders: plots.filter((p) => p.layout && p.layout.sliders && p.layout.sliders.length).length,
  };
})().then(done, (e) => done({error: String(e)}));
"""


class _Server:
    """A quiet static file server on 127.0.0.1 that remembers error responses."""

    def __init__(self, root: Path):
        self.errors: list[tuple[str, int]] = []
        errors = self.errors

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_response(self, code, message=None):
                if code >= 400 and not self.path.endswith("/favicon.ico"):
                    errors.append((self.path, code))
                super().send_response(code, message)

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def find_browser() -> tuple[str | None, str | None]:
    """Paths of Chromium and chromedriver on ``PATH`` (None where missing)."""
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    return chromium, shutil.which("chromedriver")


def _driver(chromium: str, chromedriver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def pages_of(book: Path) -> list[Path]:
    """Every HTML page of the book, index first."""
    pages = [p for p in sorted(book.rglob("*.html"))
             if not (set(p.relative_to(book).parts[:-1]) & SKIP_DIRS)]
    pages.sort(key=lambda p: (p.name != "index.html" or p.parent != book, str(p)))
    return pages


def check_page(driver, url: str, is_tutorial: bool, lessons: list[str] = (),
               width: int = WIDTHS[0], load: bool = True) -> tuple[dict, list[str]]:
    """Open one page at ``width`` CSS pixels and return (measurements, problems).

    ``lessons`` are the tutorial pages' URLs, which a tutorial page's sidebar must list.
    ``load=False`` checks the page already open (after the window changed width).
    """
    if load:
        driver.get(url)
    info = driver.execute_async_script(CHECK_JS, width)
    problems = []
    if "error" in info:
        return info, [f"check script failed: {info['error']}"]
    at = f" at {width} px"
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE" and "favicon.ico" not in entry.get("message", ""):
            problems.append(f"console: {entry.get('message', '')[:300]}")
    if info["broken"]:
        problems.append(f"images that did not decode: {info['broken'][:5]}")
    if info["math"] and info["mathjax"] != "ready":
        problems.append(f"{info['math']} formulas but MathJax did not start")
    if info["unrendered"]:
        problems.append(f"formulas not typeset: {info['unrendered']}")
    if info["texErrors"]:
        problems.append(f"{info['texErrors']} TeX errors")
    if info["plots"] != info["plotsWithData"]:
        problems.append(f"{info['plots'] - info['plotsWithData']} of {info['plots']} interactive "
                        "figures rendered without data")
    if info["scrollWidth"] > info["width"]:
        problems.append(f"horizontal overflow{at}: the page is {info['scrollWidth']} px wide for a "
                        f"{info['width']} px window; culprit: {info['overflowing']}")
    if info["plotsTooWide"]:
        problems.append(f"{info['plotsTooWide']} interactive figures wider than the window{at}")
    if info["headingMath"] != info["headingMathTypeset"]:
        problems.append(f"{info['headingMath'] - info['headingMathTypeset']} headings with a formula "
                        "not typeset")
    if info["headingDollars"]:
        problems.append(f"headings showing $...$ as text: {info['headingDollars'][:3]}")
    if is_tutorial:
        if info["images"] == 0:
            problems.append("a tutorial page without figures")
        if info["claims"] == 0:
            problems.append("a tutorial page without claim callouts")
        if info["failedClaims"]:
            problems.append(f"{info['failedClaims']} failed claims shown")
        if info["struckClaims"]:
            problems.append(f"{info['struckClaims']} parts of full-size claims struck through")
        missing = [u.rsplit("/", 1)[-1] for u in lessons if u not in info["sidebarLinks"]]
        if missing:
            problems.append(f"the sidebar does not list the lessons {missing}{at}")
        if width >= 1200 and not info["sidebarShown"]:
            problems.append(f"the sidebar is hidden{at}")
        for needle, found in (("tut.claim(", info["visibleClaimCode"]),
                              ("tut.record(", info["visibleRecordCode"])):
            if found:
                problems.append(f"{CHECKS_VISIBLE} {needle} code is shown unfolded{at} (tag its cell "
                                f'`# %% tags=["hide-input"]`): {found}')
    return info, problems


#: Each slider's rail, as a box in page coordinates, and each plot's effective axis ranges.
SLIDERS_JS = r"""
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
const out = [];
plots.forEach((p, i) => {
  if (!(p.layout && p.layout.sliders && p.layout.sliders.length)) return;
  const rail = p.querySelector('.slider-rail-touch-rect') || p.querySelector('.slider-rail-rect');
  if (!rail) { out.push({plot: i, rail: null}); return; }
  rail.scrollIntoView({block: 'center'});
  out.push({plot: i, steps: p.layout.sliders[0].steps.length});
});
return out;
"""

RANGES_JS = r"""
const p = document.querySelectorAll('.js-plotly-plot')[arguments[0]];
const fl = p._fullLayout;
return {active: fl.sliders[0].active, x: fl.xaxis.range.slice(), y: fl.yaxis.range.slice(),
        visible: p._fullData.map((t) => t.visible === true)};
"""


def drive_sliders(driver) -> tuple[list[dict], list[str]]:
    """Click each Plotly slider's rail at every step; its figure's axis ranges must not change."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    results, problems = [], []
    for s in driver.execute_script(SLIDERS_JS):
        i = s["plot"]
        if s.get("rail") is None and "steps" not in s:
            problems.append(f"interactive figure {i}: its slider has no rail to drive")
            continue
        plot = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[i]
        rail = plot.find_element(By.CSS_SELECTOR, ".slider-rail-touch-rect")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
        width = rail.size["width"]
        n = s["steps"]
        seen = []
        # the first, the middle and the last step (each click costs a relayout)
        for k in sorted({0, n // 2, n - 1}):
            # Plotly places step k at a fraction k / (n - 1) of the rail (inside its padding)
            dx = round((k / max(n - 1, 1) - 0.5) * (width - 16))
            ActionChains(driver).move_to_element_with_offset(rail, dx, 0).click().perform()
            time.sleep(0.05)
            seen.append(driver.execute_script(RANGES_JS, i))
        actives = [r["active"] for r in seen]
        y_ranges = {tuple(round(v, 9) for v in r["y"]) for r in seen}
        x_ranges = {tuple(round(v, 9) for v in r["x"]) for r in seen}
        results.append({"plot": i, "steps": n, "active": actives,
                        "y_ranges": sorted(y_ranges), "x_ranges": sorted(x_ranges)})
        if actives != sorted({0, n // 2, n - 1}):
            problems.append(f"interactive figure {i}: the slider did not reach the steps clicked "
                            f"(it showed steps {actives})")
        if len(y_ranges) > 1 or len(x_ranges) > 1:
            problems.append(f"interactive figure {i}: the axis ranges change as the slider moves "
                            f"(y {sorted(y_ranges)}, x {sorted(x_ranges)})")
    return results, problems


def _set_width(driver, width: int) -> None:
    """Lay pages out as a ``width``-pixel screen (a phone's viewport below 600 px)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})


def check_book(book: str | Path, screenshots: str | Path | None = None) -> dict:
    """Check every page of ``book``; return the report (``ok``, per-page results, seconds).

    Tutorial pages are checked at every width of :data:`WIDTHS`, other pages at the
    first; API pages only when their HTML has formulas.
    """
    book = Path(book)
    chromium, chromedriver = find_browser()
    if not (chromium and chromedriver):
        raise FileNotFoundError("Chromium and chromedriver are needed: apt-get install chromium "
                                f"chromium-driver (found chromium={chromium}, chromedriver={chromedriver})")
    start = time.perf_counter()
    server = _Server(book)
    driver = _driver(chromium, chromedriver)
    report = {"pages": {}, "server_errors": [], "api_pages_with_math": []}
    shots = Path(screenshots) if screenshots else None
    base = f"http://127.0.0.1:{server.port}/"
    pages = []
    for page in pages_of(book):
        rel = page.relative_to(book).as_posix()
        if API_DIR in page.relative_to(book).parts[:-1]:
            if 'class="math' not in page.read_text(encoding="utf-8"):
                continue
            report["api_pages_with_math"].append(rel)
        pages.append(rel)
    tutorials = [r for r in pages if r.startswith("tutorials/") and not r.endswith("/index.html")]
    lessons = [base + r for r in tutorials]
    try:
        _set_width(driver, WIDTHS[0])
        for rel in pages:
            is_tutorial = rel in tutorials
            for width in WIDTHS:
                first = width == WIDTHS[0]
                if not (first or is_tutorial or rel == "index.html"):
                    continue
                if not first:  # the same page laid out again at this width, not reloaded
                    _set_width(driver, width)
                t0 = time.perf_counter()
                info, problems = check_page(driver, base + rel, is_tutorial, lessons, width, load=first)
                if is_tutorial and first and info.get("sliders"):
                    info["slider_runs"], more = drive_sliders(driver)
                    problems += more
                if shots and (is_tutorial or rel == "index.html"):
                    shots.mkdir(parents=True, exist_ok=True)
                    driver.execute_script("window.scrollTo(0, 0)")
                    driver.save_screenshot(str(shots / f"{rel.replace('/', '__')[:-5]}@{width}.png"))
                info["seconds"] = round(time.perf_counter() - t0, 2)
                report["pages"][rel if first else f"{rel}@{width}"] = {"info": info, "problems": problems}
            if is_tutorial or rel == "index.html":  # back to the first width on an empty page
                driver.get("about:blank")           # (cheaper than laying this one out again)
                _set_width(driver, WIDTHS[0])
    finally:
        driver.quit()
        server.close()
    report["server_errors"] = [f"{path}: HTTP {code}" for path, code in server.errors]
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["ok"] = not report["server_errors"] and all(
        not r["problems"] for r in report["pages"].values())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", help="the folder written by `vitoolkit book --out`")
    parser.add_argument("--screenshots", default=None,
                        help="save a screenshot of each tutorial page's top at each width here")
    args = parser.parse_args(argv)
    if not (Path(args.book) / "index.html").is_file():
        print(f"{args.book}: no index.html (build the book first)", file=sys.stderr)
        return 1
    try:
        report = check_book(args.book, args.screenshots)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    (Path(args.screenshots or args.book) / "report.json").write_text(json.dumps(report, indent=2))
    for rel, result in report["pages"].items():
        mark = "ok " if not result["problems"] else "BAD"
        print(f"{mark} {rel}" + "".join(f"\n    - {p}" for p in result["problems"]))
    for err in report["server_errors"]:
        print(f"BAD server: {err}")
    print(f"{len(report['pages'])} pages checked in {report['seconds']} s: "
          + ("all pass" if report["ok"] else "problems found"))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
