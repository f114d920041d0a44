#!/usr/bin/env python3
"""How fast the report opens: a 100,000-row fit's report.html in headless Chromium.

Generates a 100,000-row campaign table (two categoricals, two metrics, an ad copy column with
32-dimensional vectors given as --embeddings, so no model is needed), fits K = 6 with
`segmix fit --tsne`, and opens report.html in Chromium through a page that frames it. The
time is the report's own clock (performance.now() in the framed page) when its load event
has fired and the explorer has started: HTML parsed, SVG maps laid out, the explorer's JSON
parsed and the first rows table drawn. Five runs; prints the median and the page's size.

    python3 scripts/bench_report.py [--rows 100000] [--runs 5]

Needs the release binary (cargo build --release) and Debian's chromium.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMIX = os.path.join(ROOT, "target", "release", "segmix")
CHROMIUM = next((p for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
                 if os.path.exists(p)), None)

DRIVER = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="report.html" width="1100" height="1600"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {
  var w = this.contentWindow;
  var ms = w.performance.now();
  var ready = w.document.documentElement.getAttribute("data-explorer");
  document.getElementById("result").textContent = "ms=" + ms.toFixed(1) + " ready=" + ready +
    " points=" + w.document.querySelectorAll("svg.map circle").length +
    " rows=" + w.document.querySelectorAll("#rows-body tr").length;
});
</script></body></html>"""

WORDS = [["claim", "free", "gems", "reward", "bonus"], ["join", "guild", "friends", "team", "raid"],
         ["ranked", "arena", "skill", "season", "prove"], ["stunning", "graphics", "quality", "visual", "art"],
         ["limited", "offer", "sale", "discount", "today"], ["new", "hero", "story", "quest", "world"]]


def table(path, emb_path, n, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 6, n)
    country = np.array(["KR", "US", "JP", "DE", "BR", "FR"])[(g + rng.integers(0, 2, n)) % 6]
    channel = np.array(["tiktok", "meta", "search", "youtube"])[(g + rng.integers(0, 3, n)) % 4]
    ctr = np.exp(rng.normal(-4 + 0.2 * g, 0.3))
    roas = np.exp(rng.normal(0.5 + 0.1 * g, 0.4))
    with open(path, "w") as f:
        f.write("country,channel,ctr,roas,copy\n")
        for i in range(n):
            words = rng.choice(WORDS[g[i]], 3, replace=False)
            f.write(f"{country[i]},{channel[i]},{ctr[i]:.5f},{roas[i]:.4f},{' '.join(words)} now {i % 97}\n")
    centers = rng.normal(size=(6, 32))
    np.save(emb_path, (centers[g] + 0.6 * rng.normal(size=(n, 32))).astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if not CHROMIUM:
        sys.exit("no chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        data, emb, out = (os.path.join(tmp, x) for x in ("t.csv", "t.npy", "fit"))
        table(data, emb, a.rows)
        t = time.perf_counter()
        subprocess.run([SEGMIX, "fit", data, "--cat", "country,channel", "--num", "ctr,roas", "--log", "ctr,roas", "--text", "copy",
                        "--embeddings", emb, "--k", "6", "--n-init", "1", "--tsne", "--device", "cpu", "-q",
                        "--out", out], check=True)
        fit_s = time.perf_counter() - t
        with open(os.path.join(out, "driver.html"), "w") as f:
            f.write(DRIVER)
        times, line = [], ""
        for r in range(a.runs):
            proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--allow-file-access-from-files", "--virtual-time-budget=30000",
                                   f"--user-data-dir={os.path.join(tmp, f'profile{r}')}", "--dump-dom",
                                   "file://" + os.path.join(out, "driver.html")],
                                  capture_output=True, text=True, check=True)
            start = proc.stdout.index('<pre id="result">') + len('<pre id="result">')
            line = proc.stdout[start:proc.stdout.index("</pre>", start)]
            fields = dict(kv.split("=") for kv in line.split())
            if fields.get("ready") != "ready":
                sys.exit(f"the explorer did not start: {line}\n{proc.stderr[-2000:]}")
            times.append(float(fields["ms"]))
        size = os.path.getsize(os.path.join(out, "report.html"))
        print(f"rows {a.rows}, fit {fit_s:.1f} s, report.html {size / 1e6:.2f} MB ({line.split(' ', 2)[2]})")
        print(f"opens in {statistics.median(times):.0f} ms (median of {a.runs}; runs: "
              + ", ".join(f"{t:.0f}" for t in times) + ")")


if __name__ == "__main__":
    main()
