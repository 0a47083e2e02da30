#!/usr/bin/env python3
"""The book as readers see it, checked in a real browser.

Serves the built book (book/book, from `mdbook build book`) on 127.0.0.1,
opens every page in headless Chromium (Debian's /usr/bin/chromium, driven
through /usr/bin/chromedriver by selenium) at 1366x900 and at 390x844 (a
phone), saves a full-page screenshot of each to target/book-screenshots/,
and fails, saying where and what, on:

- a page wider than the window (something pushes the page sideways);
- a figure (img) that does not load, or is wider than its column;
- a table wider than its column at 1366 px (a column a reader must scroll
  to find is a column a reader misses); at 390 px the same, unless the
  table scrolls in its own box with its key (first) column pinned;
- a code block that clips its content; a code block whose lines do not fit
  the desktop column (at 390 px code blocks may scroll sideways in their
  own box: transcripts are fixed-width text);
- an ASCII-art diagram in a code block (see looks_like_a_diagram: draw it
  as an SVG in book/src/figures/ instead);
- a JavaScript error (or a failed load) in the console;
- a chapter page (chNN-*.html) with fewer than three
  <details class="predict"> questions, or an answer that quotes a
  transcript line (`... -> ...`, `[tag] ... => ...`) found in no committed
  snapshot (chapters/*/tests/snapshots);
- a search for EPOLLET that finds nothing;
- a link or image inside the book that points to a missing page or anchor.

Usage (after `mdbook build book`):
    python3 tools/book-check/book_check.py [--book book/book]
        [--screenshots target/book-screenshots] [--page ch07-level-vs-edge.html]
"""

import argparse
import functools
import html.parser
import http.server
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WIDTHS = [(1366, 900), (390, 844)]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Pages mdBook writes that are not pages of the book: the print view (every
# chapter again, on one page), the 404 page and the sidebar for browsers
# without JavaScript.
NOT_PAGES = {"print.html", "404.html", "toc.html"}
PREDICT_MIN = 3
# Commentary lines of a transcript (`# ` lines, from the chapters' note())
# must fit the desktop column, which shows 86 characters of code at
# 1366 px (measured: 86 fit, 89 scroll); wrap them at about 76.
COMMENT_MAX = 86
# Code lines that scroll at 1366 px, tables that scroll at 390 px: listed,
# not failed.
long_lines = []
wide_tables = []


def looks_like_a_diagram(text):
    """A code block drawn as a picture, rather than text to read or type.

    Transcripts (`call -> result`, `[tag] ... => ...`, `# commentary`),
    program listings and commands are not diagrams. A block is taken for
    ASCII art when two or more of its lines have strokes (box-drawing
    characters, `+--`, `--+`, `-->`, `<--`, `---` rules, a `|` column
    rule, `/ \\` tree branches), or text pushed far right (16+ leading
    spaces), or three or more lines lay out phrases in two columns (a gap
    of 4+ spaces after two or more words, not before a `# comment`).
    Returns the reason, or None.
    """
    lines = [line for line in text.split("\n") if line.strip()]
    if re.search(r"[\u2500-\u257f\u2190-\u21ff]", text):
        return "box-drawing or arrow characters"
    strokes = [
        line
        for line in lines
        if re.search(r"\+--|--\+|-->|<--|---|^\s*\|\s|\s\|\s*$", line)
        or re.search(r"^\s*/\s+\\\s*$|\S\s+/\s{3,}\\", line)
    ]
    if len(strokes) >= 2:
        return "strokes, e.g. %r" % strokes[0].strip()
    pushed = [line for line in lines if re.match(r" {16,}\S", line)]
    if len(pushed) >= 2:
        return "text pushed right, e.g. %r" % pushed[0].strip()
    columns = [
        line
        for line in lines
        if re.search(r"^\s*\S+ \S.*\S {4,}[^#\s]", line)
    ]
    if len(columns) >= 3:
        return "two columns of text, e.g. %r" % columns[0].strip()
    return None


# ---------------------------------------------------------------- links


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()
        self.refs = []  # (attribute, value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.refs.append(("href", attrs["href"]))
        if tag == "img" and attrs.get("src"):
            self.refs.append(("src", attrs["src"]))


def check_links(root, pages):
    """Every link and image inside the book resolves to a file (and anchor)."""
    parsed = {}

    def parse(path):
        if path not in parsed:
            p = _Links()
            with open(path, encoding="utf-8") as f:
                p.feed(f.read())
            parsed[path] = p
        return parsed[path]

    problems = []
    for page in pages:
        for attr, ref in parse(os.path.join(root, page)).refs:
            url = urllib.parse.urlparse(ref)
            if url.scheme or ref.startswith("//") or ref.startswith("mailto:"):
                continue  # outside the book: not checked (the network is closed)
            target = page if not url.path else os.path.normpath(
                os.path.join(os.path.dirname(page), urllib.parse.unquote(url.path)))
            path = os.path.join(root, target)
            if os.path.isdir(path):
                path = os.path.join(path, "index.html")
            if not os.path.isfile(path):
                problems.append("%s: %s=%r points to a missing file (%s)" % (page, attr, ref, target))
                continue
            if url.fragment and path.endswith(".html"):
                if urllib.parse.unquote(url.fragment) not in parse(path).ids:
                    problems.append("%s: %s=%r: no id %r in %s" % (page, attr, ref, url.fragment, target))
    return problems


# ---------------------------------------------------------------- predict


def check_predict_quotes(src, snapshots):
    """Every transcript line an answer of a "Predict" block quotes (a code
    span with ` -> ` or ` => `, or one starting with `-> `) is in a committed
    snapshot: the answers are the programs' real results, never invented.
    A quote may end in `...` (a prefix of the line)."""
    text = ""
    for root, _dirs, files in os.walk(snapshots):
        for name in files:
            if name.endswith(".snap"):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    text += f.read()
    problems = []
    for name in sorted(os.listdir(src)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            page = f.read()
        for block in re.findall(r'<details class="predict">(.*?)</details>', page, re.S):
            answer = block.split("</summary>", 1)[-1]
            for quote in re.findall(r"`([^`]+)`", answer):
                if not (" -> " in quote or " => " in quote or quote.startswith("-> ")):
                    continue
                wanted = quote[:-3].rstrip() if quote.endswith("...") else quote
                # A code span may be wrapped in the page's source: Markdown
                # shows its line break as one space (CommonMark, code spans).
                wanted = re.sub(r"[ \t]*\n[ \t]*", " ", wanted)
                if wanted not in text:
                    problems.append("%s: a Predict answer quotes %r, which no snapshot contains"
                                    % (name, quote))
    return problems


# ---------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- browser


def start_browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--user-data-dir=" + profile,
        "--window-size=1366,900",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium never tries to download one.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def set_viewport(driver, width, height):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600,
    })


def full_page_screenshot(driver, path, width):
    height = driver.execute_script(
        "return Math.ceil(Math.max(document.documentElement.scrollHeight, document.body.scrollHeight))")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    import base64
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


# Measured in the page: every figure, table and code block of the content.
MEASURE = r"""
const vw = document.documentElement.clientWidth;
const main = document.querySelector('main');
const out = {vw: vw, pageWidth: document.documentElement.scrollWidth,
             imgs: [], tables: [], pres: [], predicts: 0};
const where = el => {
  let h = el, heading = '';
  while (h && h !== main) {
    let p = h.previousElementSibling;
    while (p && !/^H[1-6]$/.test(p.tagName)) p = p.previousElementSibling;
    if (p) { heading = p.textContent.trim(); break; }
    h = h.parentElement;
  }
  return heading;
};
for (const img of main.querySelectorAll('img')) {
  const r = img.getBoundingClientRect();
  const col = img.parentElement.getBoundingClientRect();
  out.imgs.push({src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
                 left: r.left, right: r.right, colRight: col.right + 1, where: where(img)});
}
for (const t of main.querySelectorAll('table')) {
  const box = t.parentElement;
  const br = box.getBoundingClientRect();
  const heads = t.rows.length ? [...t.rows[0].cells] : [];
  const hidden = heads.filter(th => th.getBoundingClientRect().right > br.right + 1)
                      .map(th => th.textContent.trim() || '(empty)');
  const key = t.rows.length && t.rows[t.rows.length - 1].cells.length
    ? getComputedStyle(t.rows[t.rows.length - 1].cells[0]).position : '';
  out.tables.push({first: heads.map(th => th.textContent.trim()).join(' | ').slice(0, 80),
                   boxRight: br.right, width: t.scrollWidth, boxWidth: box.clientWidth,
                   scrolls: ['auto', 'scroll'].includes(getComputedStyle(box).overflowX),
                   pinned: key === 'sticky', hidden: hidden, where: where(t)});
}
for (const pre of main.querySelectorAll('pre')) {
  const r = pre.getBoundingClientRect();
  const code = pre.querySelector('code') || pre;
  const style = getComputedStyle(code);
  const preStyle = getComputedStyle(pre);
  const scrolls = ['auto', 'scroll'].includes(style.overflowX) || ['auto', 'scroll'].includes(preStyle.overflowX);
  const text = code.innerText;
  const longest = text.split('\n').reduce((a, l) => l.length > a.length ? l : a, '');
  out.pres.push({right: r.right, overflow: code.scrollWidth > code.clientWidth + 1,
                 scrolls: scrolls, lang: code.className, text: text, longest: longest,
                 where: where(pre)});
}
out.predicts = main.querySelectorAll('details.predict').length;
return out;
"""


def check_page(driver, base, page, width, height, shots):
    problems = []
    set_viewport(driver, width, height)
    driver.get(base + page)
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    # Let images decode; an image still not complete after this did not load.
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    m = driver.execute_script(MEASURE)
    tag = "%s at %d px" % (page, width)
    vw = m["vw"]
    if m["pageWidth"] > vw + 1:
        problems.append("%s: the page is %d px wide, wider than the window (%d px): "
                        "something does not fit its column" % (tag, m["pageWidth"], vw))
    for img in m["imgs"]:
        if not img["loaded"]:
            problems.append("%s: image %s did not load (section %r)" % (tag, img["src"], img["where"]))
        elif img["right"] > min(vw, img["colRight"]) + 1 or img["left"] < -1:
            problems.append("%s: image %s is wider than its column (right edge at %d px, window %d px; "
                            "section %r)" % (tag, img["src"], img["right"], vw, img["where"]))
    for t in m["tables"]:
        if t["boxRight"] > vw + 1:
            problems.append("%s: table [%s] sticks out of the window (section %r)" % (tag, t["first"], t["where"]))
        if t["width"] > t["boxWidth"] + 1 and width < 1000 and t["scrolls"] and t["pinned"]:
            # On a phone a table with many number columns may scroll in its
            # own box, its key column pinned (theme/epoll-lab.css).
            wide_tables.append("%s: table [%s] scrolls at %d px (%d px in %d px; key column pinned)"
                               % (page, t["first"][:40], width, t["width"], t["boxWidth"]))
        elif t["width"] > t["boxWidth"] + 1:
            problems.append(
                "%s: table [%s] is %d px wide in a %d px column, so columns %s are off-screen until "
                "the reader scrolls (section %r): shorten its cells or split it"
                % (tag, t["first"], t["width"], t["boxWidth"], t["hidden"], t["where"]))
    for pre in m["pres"]:
        if pre["right"] > vw + 1:
            problems.append("%s: code block sticks out of the window (section %r)" % (tag, pre["where"]))
        if pre["overflow"] and not pre["scrolls"]:
            problems.append("%s: code block clips its content (section %r): %r"
                            % (tag, pre["where"], pre["longest"]))
        if width >= 1000 and "language-rust" not in pre["lang"]:
            # Commentary (`# ` lines, the chapters' note text) is ours to
            # wrap; a traced call or a line of code is what it is, and its
            # block scrolls.
            for line in pre["text"].split("\n"):
                if line.startswith("# ") and len(line) > COMMENT_MAX:
                    problems.append(
                        "%s: a commentary line of %d characters (more than %d) in a transcript "
                        "(section %r): wrap the chapter's note() text: %r"
                        % (tag, len(line), COMMENT_MAX, pre["where"], line))
        if pre["overflow"] and pre["scrolls"] and width >= 1000:
            long_lines.append("%s (section %r): %d characters: %s"
                              % (page, pre["where"], len(pre["longest"]), pre["longest"][:60]))
        if "language-rust" not in pre["lang"] and width == WIDTHS[0][0]:
            reason = looks_like_a_diagram(pre["text"])
            if reason:
                problems.append(
                    "%s: an ASCII-art diagram in a code block (section %r; %s). It loses its right half "
                    "on a phone: draw it as an SVG in book/src/figures/ (see CONTRIBUTING.md, "
                    "\"The book\")" % (tag, pre["where"], reason))
    if re.match(r"ch\d\d-", page) and width == WIDTHS[0][0] and m["predicts"] < PREDICT_MIN:
        problems.append("%s: %d <details class=\"predict\"> questions; a chapter has at least %d"
                        % (page, m["predicts"], PREDICT_MIN))
    name = "%s-%d.png" % (page[:-len(".html")].replace("/", "_"), width)
    full_page_screenshot(driver, os.path.join(shots, name), width)
    return problems


def console_errors(driver, where):
    problems = []
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append("%s: console error: %s" % (where, entry.get("message")))
    return problems


def check_search(driver, base):
    set_viewport(driver, *WIDTHS[0])
    driver.get(base + "index.html?search=EPOLLET")
    try:
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#mdbook-searchresults li"))
    except TimeoutException:
        header = driver.find_element(By.ID, "mdbook-searchresults-header").text
        return ["search: EPOLLET found nothing (results header: %r)" % header]
    n = len(driver.find_elements(By.CSS_SELECTOR, "#mdbook-searchresults li"))
    print("search: EPOLLET -> %d results" % n)
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book", default="book/book", help="the built book (mdbook build book)")
    ap.add_argument("--screenshots", default="target/book-screenshots")
    ap.add_argument("--page", action="append", help="check only this page (repeatable)")
    args = ap.parse_args()

    root = os.path.abspath(args.book)
    if not os.path.isfile(os.path.join(root, "index.html")):
        sys.exit("book-check: no %s/index.html: run `mdbook build book` first" % root)
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            sys.exit("book-check: %s is missing: apt-get install chromium chromium-driver" % tool)
    pages = args.page or sorted(
        p for p in os.listdir(root) if p.endswith(".html") and p not in NOT_PAGES)
    os.makedirs(args.screenshots, exist_ok=True)

    started = time.monotonic()
    problems = check_links(root, pages)
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    problems += check_predict_quotes(os.path.join(repo, "book", "src"), os.path.join(repo, "chapters"))
    server = serve(root)
    base = "http://127.0.0.1:%d/" % server.server_address[1]
    with tempfile.TemporaryDirectory(prefix="book-check-profile-") as profile:
        driver = start_browser(profile)
        try:
            for page in pages:
                for width, height in WIDTHS:
                    problems += check_page(driver, base, page, width, height, args.screenshots)
                    problems += console_errors(driver, "%s at %d px" % (page, width))
            problems += check_search(driver, base)
            problems += console_errors(driver, "search")
        finally:
            driver.quit()
            server.shutdown()
    elapsed = time.monotonic() - started
    print("book-check: %d pages x %d widths in %.1f s; screenshots in %s"
          % (len(pages), len(WIDTHS), elapsed, args.screenshots))
    for line in wide_tables:
        print("note: " + line)
    for line in sorted(set(long_lines)):
        print("note: scrolls at 1366 px: " + line)
    for p in problems:
        print("FAIL " + p)
    if problems:
        print("book-check: %d problems" % len(problems))
        sys.exit(1)
    print("book-check: all pages pass")


if __name__ == "__main__":
    main()
