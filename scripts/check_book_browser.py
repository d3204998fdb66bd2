"""Open every page of the built course book in headless Chromium and check it.

Usage::

    python scripts/check_book_browser.py BOOK_DIR [--screenshots DIR] [--chromium PATH]

``BOOK_DIR`` is the output of ``vitoolkit book --out BOOK_DIR``. The book is
served on 127.0.0.1 (a random free port) and every HTML page, index first, is
opened in Debian's Chromium, driven through the Chrome DevTools protocol over a
pipe (``--remote-debugging-pipe``), so nothing beyond the standard library and
the browser is needed. For each page the check asserts that

- the page loads and every image has loaded (``complete`` and ``naturalWidth > 0``,
  lazy images forced to load first),
- the math has rendered: MathJax ran, every ``span.math`` / ``div.math`` holds a
  typeset ``mjx-container``, and no TeX error or undefined macro is shown,
- the browser reported no console error, uncaught exception or failed load, and
  the server answered no request with an error status,

and saves a full-page screenshot (``<page path with / as __>.png``) plus
``report.json``. Exit code 0 when every page passes, 1 when one fails, 2 when
Chromium cannot be found (install it with ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags for a closed network and a root user (see the machine notes): no sandbox,
# no GPU, no background connections to Google's services, a fresh profile.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-pipe",
)
SKIP_DIRS = {"_static", "_sources", "_downloads", "_images"}
VIEWPORT = (1280, 900)
# Chromium cannot capture much beyond 16k pixels at once; longer pages are cut there.
MAX_SHOT_HEIGHT = 16000

CHECK_JS = r"""
(async () => {
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const imgs = Array.from(document.images);
  imgs.forEach((img) => { img.loading = 'eager'; });
  await Promise.race([
    Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
      img.addEventListener('load', r); img.addEventListener('error', r); }))),
    wait(15000)]);
  let mathjax = 'absent';
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await Promise.race([window.MathJax.startup.promise, wait(20000)]);
    mathjax = 'ready';
  }
  const math = Array.from(document.querySelectorAll('span.math, div.math'));
  const unrendered = math.filter((n) => !n.querySelector('mjx-container'));
  const texErrors = document.querySelectorAll(
    'mjx-merror, [data-mml-node="merror"], [data-mml-node="mtext"][fill="red"]');
  return {
    title: document.title,
    images: imgs.length,
    broken: imgs.filter((i) => !(i.complete && i.naturalWidth > 0))
                .map((i) => i.getAttribute('src')),
    math: math.length,
    unrendered: unrendered.slice(0, 5).map((n) => n.textContent.slice(0, 80)),
    texErrors: texErrors.length,
    mathjax: mathjax,
    height: Math.ceil(Math.max(document.documentElement.scrollHeight,
                               document.body ? document.body.scrollHeight : 0)),
  };
})()
"""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: ``explicit``, ``$CHROMIUM``, or the first on ``PATH``."""
    for candidate in (explicit, os.environ.get("CHROMIUM")):
        if candidate:
            return shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Server:
    """A quiet static file server on 127.0.0.1 that remembers error responses."""

    def __init__(self, root: Path):
        self.errors: list[tuple[str, int]] = []
        errors = self.errors

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep the check's output readable
                pass

            def send_response(self, code, message=None):
                if code >= 400 and not self.path.endswith("/favicon.ico"):
                    errors.append((self.path, code))
                super().send_response(code, message)

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class CDPError(RuntimeError):
    """Chromium answered a DevTools command with an error, or did not answer in time."""


class Chromium:
    """Headless Chromium driven by the DevTools protocol over ``--remote-debugging-pipe``.

    Chromium reads commands from its file descriptor 3 and writes replies and events
    to descriptor 4, each a JSON message ended by a NUL byte.
    """

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="vitoolkit-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The shell maps our pipe ends onto descriptors 3 and 4 without a preexec_fn.
        cmd = ["/bin/sh", "-c", f'exec "$@" 3<&{to_child_r} 4>&{from_child_w}', "sh",
               executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}",
               f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_child_r, from_child_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.version = self.send("Browser.getVersion")["product"]

    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one command and return its result (raise :class:`CDPError` on error)."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"no answer to {method} "
                                   f"({'browser exited' if self._closed else 'timed out'})")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str, since: int, timeout: float) -> dict:
        """Wait for an event ``method`` of ``session`` at index >= ``since`` in :attr:`events`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if event.get("method") == method and event.get("sessionId") == session:
                        return event
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"{method} did not arrive within {timeout:.0f} s")
                self._cond.wait(left)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        self._reader.join(timeout=5)
        os.close(self._from_child)
        self.profile.cleanup()


def _console_errors(events: list[dict], session: str) -> list[str]:
    found = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            found.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            found.append(f"uncaught exception: {text}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            if str(entry.get("url", "")).endswith("/favicon.ico"):
                continue
            found.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
    return found


def list_pages(root: Path) -> list[Path]:
    """Every HTML page of the book, ``index.html`` first, the rest in path order."""
    pages = [p for p in root.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(root).parts)]
    return sorted(pages, key=lambda p: (p.relative_to(root) != Path("index.html"), str(p)))


def check_page(browser: Chromium, url: str, shot: Path, timeout: float) -> dict:
    """Load one page, run the checks and save its screenshot; return the findings."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1,
                      "mobile": False}, session=session)
        since = len(browser.events)
        nav = browser.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            return {"url": url, "errors": [f"navigation failed: {nav['errorText']}"]}
        browser.wait_event("Page.loadEventFired", session, since, timeout)
        result = browser.send("Runtime.evaluate",
                              {"expression": CHECK_JS, "awaitPromise": True,
                               "returnByValue": True}, session=session, timeout=timeout)
        if "exceptionDetails" in result:
            raise CDPError(f"check script failed: {result['exceptionDetails'].get('text')}")
        found = result["result"]["value"]
        height = max(VIEWPORT[1], min(int(found["height"]), MAX_SHOT_HEIGHT))
        image = browser.send("Page.captureScreenshot",
                             {"format": "png", "captureBeyondViewport": True,
                              "clip": {"x": 0, "y": 0, "width": VIEWPORT[0], "height": height,
                                       "scale": 1}}, session=session, timeout=timeout)
        import base64

        shot.write_bytes(base64.b64decode(image["data"]))
        time.sleep(0.05)  # let late console events of this page arrive
        with browser._cond:
            events = list(browser.events[since:])
        errors = _console_errors(events, session)
        errors += [f"broken image: {src}" for src in found["broken"]]
        errors += [f"math not rendered: {text!r}" for text in found["unrendered"]]
        if found["texErrors"]:
            errors.append(f"{found['texErrors']} TeX errors shown by MathJax")
        if found["math"] and found["mathjax"] != "ready":
            errors.append("page has math but MathJax did not start")
        found.update(url=url, errors=errors, screenshot=str(shot), bytes=shot.stat().st_size,
                     truncated=int(found["height"]) > MAX_SHOT_HEIGHT)
        return found
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
        with browser._cond:  # drop this page's events; the list would only grow
            browser.events = [e for e in browser.events if e.get("sessionId") != session]


def run_check(root: Path, screenshots: Path, chromium: str, timeout: float = 60.0,
              out=sys.stdout) -> list[dict]:
    """Check every page of the book at ``root``; return one findings dict per page."""
    screenshots.mkdir(parents=True, exist_ok=True)
    pages = list_pages(root)
    if not pages:
        raise SystemExit(f"no HTML pages under {root}: build the book first")
    results = []
    with _Server(root) as server:
        browser = Chromium(chromium, timeout=timeout)
        print(f"{browser.version}; {len(pages)} pages served from {root}", file=out)
        try:
            for page in pages:
                rel = page.relative_to(root).as_posix()
                shot = screenshots / (rel.replace("/", "__")[: -len(".html")] + ".png")
                before = len(server.errors)
                start = time.perf_counter()
                try:
                    found = check_page(browser, f"http://127.0.0.1:{server.port}/{rel}", shot,
                                       timeout)
                except CDPError as err:
                    found = {"url": rel, "errors": [str(err)]}
                found["errors"] += [f"HTTP {code} for {path}"
                                    for path, code in server.errors[before:]]
                found["page"] = rel
                found["seconds"] = round(time.perf_counter() - start, 2)
                results.append(found)
                status = "ok  " if not found["errors"] else "FAIL"
                print(f"{status} {rel:<55} images {found.get('images', 0):>3}  "
                      f"math {found.get('math', 0):>4}  "
                      f"shot {found.get('bytes', 0) / 1024:>7.0f} KiB  "
                      f"{found['seconds']:.1f} s", file=out)
                for error in found["errors"]:
                    print(f"     {error}", file=out)
        finally:
            browser.close()
    (screenshots / "report.json").write_text(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", help="the built book (vitoolkit book --out BOOK)")
    parser.add_argument("--screenshots", default=None,
                        help="folder for the screenshots and report.json "
                             "(default: BOOK/../book-screenshots)")
    parser.add_argument("--chromium", default=None, help="Chromium executable")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per page step")
    args = parser.parse_args(argv)

    root = Path(args.book).resolve()
    if not (root / "index.html").is_file():
        print(f"error: {root} has no index.html; build the book first", file=sys.stderr)
        return 1
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("error: Chromium not found (apt-get install chromium, or pass --chromium)",
              file=sys.stderr)
        return 2
    screenshots = Path(args.screenshots) if args.screenshots else root.parent / "book-screenshots"
    start = time.perf_counter()
    results = run_check(root, screenshots, chromium, timeout=args.timeout)
    failed = [r for r in results if r["errors"]]
    sizes = [r.get("bytes", 0) for r in results]
    print(f"{len(results) - len(failed)} of {len(results)} pages pass the browser check "
          f"({len(failed)} failing; checked in {time.perf_counter() - start:.0f} s; screenshots "
          f"{min(sizes) / 1024:.0f}-{max(sizes) / 1024:.0f} KiB, {sum(sizes) / 2**20:.1f} MiB "
          f"in all, in {screenshots})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
