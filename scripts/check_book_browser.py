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
- on the tutorial pages: every interactive (Plotly) figure rendered with data,
  and the claims are shown as callouts,

and writes ``report.json`` (plus a full-page screenshot per page with
``--screenshots``). Exit code 0 when every page passes, 1 when one fails, 2 when
Chromium or chromedriver is missing.
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

SKIP_DIRS = {"_static", "_sources", "_downloads", "_images", "generated"}
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
    claims: document.querySelectorAll('div.vt-claim').length,
    failedClaims: document.querySelectorAll('div.vt-claim-failed').length,
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


def check_page(driver, url: str, is_tutorial: bool) -> tuple[dict, list[str]]:
    """Open one page and return (measurements, problems)."""
    driver.get(url)
    info = driver.execute_async_script(CHECK_JS)
    problems = []
    if "error" in info:
        return info, [f"check script failed: {info['error']}"]
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
    if is_tutorial:
        if info["images"] == 0:
            problems.append("a tutorial page without figures")
        if info["claims"] == 0:
            problems.append("a tutorial page without claim callouts")
        if info["failedClaims"]:
            problems.append(f"{info['failedClaims']} failed claims shown")
    return info, problems


def check_book(book: str | Path, screenshots: str | Path | None = None) -> dict:
    """Check every page of ``book``; return the report (``ok``, per-page results, seconds)."""
    book = Path(book)
    chromium, chromedriver = find_browser()
    if not (chromium and chromedriver):
        raise FileNotFoundError("Chromium and chromedriver are needed: apt-get install chromium "
                                f"chromium-driver (found chromium={chromium}, chromedriver={chromedriver})")
    start = time.perf_counter()
    server = _Server(book)
    driver = _driver(chromium, chromedriver)
    report = {"pages": {}, "server_errors": []}
    try:
        for page in pages_of(book):
            rel = page.relative_to(book).as_posix()
            url = f"http://127.0.0.1:{server.port}/{rel}"
            info, problems = check_page(driver, url, is_tutorial=rel.startswith("tutorials/")
                                        and page.name != "index.html")
            if screenshots:
                shots = Path(screenshots)
                shots.mkdir(parents=True, exist_ok=True)
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1280, min(max(int(height), 900), 16000))
                driver.save_screenshot(str(shots / (rel.replace("/", "__") + ".png")))
                driver.set_window_size(1280, 900)
            report["pages"][rel] = {"info": info, "problems": problems}
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
    parser.add_argument("--screenshots", default=None, help="save a screenshot of each page here")
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
