"""The report as a person sees it: Debian's Chromium (headless) opens index.html from disk.

Checks: the page loads without console errors, every <img> decodes (naturalWidth > 0), and the screenshot is
not blank. Skipped without a Chromium binary (CI installs it: see .ci/run).
"""

import re
import shutil
import subprocess

import numpy as np
import PIL.Image
import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
PROBE = """<script>
window.addEventListener("error", (e) => document.body.setAttribute("data-js-error", String(e.message)));
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute("data-probe", "images=" + images.length + " broken=" + broken);
  console.log("csdn-probe-loaded");
});
</script>"""


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium binary on PATH (apt-get install chromium); the browser test needs one")


def run_browser(page, tmp_path, *flags):
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *flags,
               page.resolve().as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_report_renders_in_chromium(eval_report, tmp_path):
    chromium()
    # a copy of the page with a probe script appended (the report itself has no script at all)
    probe_dir = tmp_path / "probe copy"
    shutil.copytree(eval_report, probe_dir)
    page = probe_dir / "index.html"
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = run_browser(page, tmp_path, "--virtual-time-budget=5000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    probe = re.search(r'data-probe="images=(\d+) broken=(\d+)"', result.stdout)
    assert probe is not None, "the page did not finish loading:\n" + result.stderr[-2000:]
    assert int(probe.group(1)) > 50 and int(probe.group(2)) == 0, probe.group(0)
    assert re.search(r"<body[^>]*data-js-error", result.stdout) is None  # no uncaught script error
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert any("csdn-probe-loaded" in line for line in console), "console capture did not work"
    assert [line for line in console if "csdn-probe-loaded" not in line] == []  # no console error or warning
    assert "Failed to load resource" not in result.stderr and "ERR_FILE_NOT_FOUND" not in result.stderr

    # the unmodified page, screenshotted: not blank, not all white
    shot = tmp_path / "shot.png"
    result = run_browser(eval_report / "index.html", tmp_path, "--window-size=1200,2400", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with PIL.Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.05, (pixels.std(), (pixels < 200).mean())
