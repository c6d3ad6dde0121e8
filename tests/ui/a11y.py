"""Accessibility checks for the browser tests: axe-core run in the page, a WCAG contrast walk over the
rendered text, and JupyterLab's light/dark theme switch.

- `axe_violations(page, scope)`: axe-core (the npm package, injected with a script tag) on the elements
  matching `scope`; only the critical and serious violations, each as one readable line.
- `low_contrast(page, scope)`: every visible text (text nodes, form values, placeholders) in `scope` whose
  contrast ratio with its effective background (the first opaque background up the tree, the translucent
  ones above it blended in) is under 4.5:1.
- `Themes`: switch to 'light' or 'dark' and wait until the theme's CSS applies; `restore()` puts back the
  theme the server had (the theme is a user setting, saved on the shared test server).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AXE = Path("labextension", "node_modules", "axe-core", "axe.min.js")


def _main_checkout() -> Path | None:
    """The main checkout of this repository when this is a git worktree (which may have no node_modules)."""
    try:
        common = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(common).parent if common else None


AXE_CANDIDATES = [os.environ.get("JJ_AXE_PATH", ""), str(REPO / AXE)]
if (main := _main_checkout()) is not None and main != REPO:
    AXE_CANDIDATES.append(str(main / AXE))
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal text; issue 16 asks it of every text and badge, large or not
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
BLOCKING = ("critical", "serious")


def axe_path() -> Path | None:
    for candidate in AXE_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def inject_axe(page) -> None:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        path = axe_path()
        if path is None:
            raise FileNotFoundError("axe-core not found (jlpm install in labextension/, or set JJ_AXE_PATH): "
                                    + ", ".join(c for c in AXE_CANDIDATES if c))
        page.add_script_tag(path=str(path))


def axe_violations(page, scope: str, impacts=BLOCKING) -> list[str]:
    """axe-core's violations of these impacts in the elements matching `scope`, one readable line each:
    rule id, impact, what it means and the offending elements (CSS selectors, with axe's summary)."""
    inject_axe(page)
    assert page.locator(scope).count(), f"nothing matches {scope!r}: the view is not open"
    # JupyterLab's <body> is 0 px high with `overflow: hidden` (the shell is positioned over it; the browser
    # hands body's overflow to the viewport, so nothing is clipped). axe-core does not model that and takes
    # every text for clipped away: its color-contrast rule then finds nothing to check ("inapplicable").
    # The body gets the viewport's height while axe runs: nothing moves on screen.
    result = page.evaluate(
        """async scope => {
            const height = document.body.style.height;
            document.body.style.height = '100vh';
            let r;
            try {
                r = await window.axe.run({include: [scope]}, {resultTypes: ['violations']});
            } finally {
                document.body.style.height = height;
            }
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), impact: n.impact,
                                          summary: n.failureSummary, html: n.html.slice(0, 160)}))}));
        }""",
        scope,
    )
    lines = []
    for violation in result:
        nodes = [n for n in violation["nodes"] if (n["impact"] or violation["impact"]) in impacts]
        if not nodes:
            continue
        where = "\n".join(f"      {n['target']}  {n['html']}\n        {(n['summary'] or '').replace(chr(10), ' ')}"
                          for n in nodes[:8])
        more = f"\n      … and {len(nodes) - 8} more" if len(nodes) > 8 else ""
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} [{len(nodes)} element(s)]\n"
                     f"{where}{more}")
    return lines


# Runs in the page: the contrast of every visible text in `scope` (an element selector).
CONTRAST_JS = r"""
([scope, minimum]) => {
  const canvas = document.createElement('canvas').getContext('2d');
  const parse = value => {
    const srgb = /^color\(srgb\s+([\d.e-]+)\s+([\d.e-]+)\s+([\d.e-]+)(?:\s*\/\s*([\d.]+)(%?))?\s*\)$/.exec(value);
    if (srgb) {  // what color-mix() computes to
      let a = srgb[4] === undefined ? 1 : parseFloat(srgb[4]);
      if (srgb[5] === '%') a /= 100;
      return [0, 1, 2].map(i => Math.min(255, Math.max(0, parseFloat(srgb[i + 1]) * 255))).concat([a]);
    }
    let m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+)(%?))?\s*\)$/.exec(value);
    if (!m) {  // another syntax (color(srgb …), a name): let the canvas normalise it
      canvas.fillStyle = '#000';
      canvas.fillStyle = value;
      const v = canvas.fillStyle;
      if (v.startsWith('#')) {
        return [parseInt(v.slice(1, 3), 16), parseInt(v.slice(3, 5), 16), parseInt(v.slice(5, 7), 16), 1];
      }
      m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+)(%?))?\s*\)$/.exec(v);
      if (!m) return null;
    }
    let a = m[4] === undefined ? 1 : parseFloat(m[4]);
    if (m[5] === '%') a /= 100;
    return [parseFloat(m[1]), parseFloat(m[2]), parseFloat(m[3]), a];
  };
  const over = (top, bottom) => {  // `top` (with alpha) composited over the opaque `bottom`
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const luminance = c => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (l1 + 0.05) / (l2 + 0.05);
  };
  const hex = c => '#' + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, '0')).join('');
  // The background under `el`: translucent layers up the tree, blended over the first opaque one.
  const background = el => {
    const layers = [];
    let unsure = '';  // why the background is not one known colour
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage.includes('gradient')) unsure = 'over a gradient';
      const color = parse(style.backgroundColor);
      if (!color) unsure = `unreadable background ${style.backgroundColor}`;
      if (color && color[3] > 0) {
        layers.push(color);
        if (color[3] >= 1) break;
      }
    }
    let result = [255, 255, 255, 1];  // the canvas behind everything
    for (const layer of layers.reverse()) result = over(layer, result);
    return {color: result, unsure};
  };
  const opacity = el => {
    let o = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      o *= parseFloat(getComputedStyle(node).opacity);
    }
    return o;
  };
  const visible = el => {
    if (!el.getClientRects().length) return false;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || el.closest('[aria-hidden="true"]')) return false;
    const rect = el.getBoundingClientRect();
    return rect.width > 1 && rect.height > 1;  // not a visually hidden (1px, clipped) label
  };
  const selector = el => {
    const parts = [];
    for (let node = el; node && node.nodeType === 1 && parts.length < 4; node = node.parentElement) {
      let part = node.tagName.toLowerCase();
      if (node.id) part += '#' + node.id;
      const classes = Array.from(node.classList).filter(c => !c.startsWith('lm-mod') && !c.startsWith('p-'));
      if (classes.length) part += '.' + classes.slice(0, 3).join('.');
      if (node.dataset && node.dataset.status) part += `[data-status="${node.dataset.status}"]`;
      parts.unshift(part);
      if (node.id) break;
    }
    return parts.join(' > ');
  };
  const disabled = el => el.matches(':disabled') || !!el.closest('[aria-disabled="true"]');
  const results = [];
  const check = (el, text, what, colorValue) => {
    const fg = parse(colorValue);
    const bg = background(el);
    if (!fg) {
      results.push({selector: selector(el), text: text.trim().slice(0, 60), what, ratio: 0, color: colorValue,
                    background: hex(bg.color), unsure: `unreadable colour ${colorValue}`, fontSize: ''});
      return;
    }
    const shown = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg.color);
    const value = ratio(shown, bg.color);
    results.push({selector: selector(el), text: text.trim().replace(/\s+/g, ' ').slice(0, 60), what,
                  ratio: Math.round(value * 100) / 100, color: hex(shown), background: hex(bg.color),
                  unsure: bg.unsure, fontSize: getComputedStyle(el).fontSize});
  };
  const roots = Array.from(document.querySelectorAll(scope));
  const seen = new Set();
  for (const root of roots) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (seen.has(el) || !visible(el) || disabled(el)) continue;
      seen.add(el);
      if (el.closest('svg')) continue;  // icons: not text
      const tag = el.tagName;
      if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') {
        const type = (el.getAttribute('type') || 'text').toLowerCase();
        if (['checkbox', 'radio', 'range', 'color', 'file', 'hidden', 'image'].includes(type)) continue;
        const text = tag === 'SELECT' ? (el.selectedOptions[0]?.textContent ?? '') : el.value;
        if (text.trim()) {
          check(el, text, 'value', getComputedStyle(el).color);
        } else if (el.placeholder) {
          check(el, el.placeholder, 'placeholder', getComputedStyle(el, '::placeholder').color);
        }
        continue;
      }
      if (tag === 'OPTION' || tag === 'OPTGROUP') continue;  // drawn by the select's popup
      const own = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join('');
      if (own.trim()) check(el, own, 'text', getComputedStyle(el).color);
    }
  }
  return results;
}
"""


def contrasts(page, scope: str) -> list[dict]:
    """Every visible text in `scope` with its contrast ratio: {selector, text, what, ratio, color,
    background, unsure (why it could not be measured, or ''), fontSize}."""
    return page.evaluate(CONTRAST_JS, [scope, MIN_CONTRAST])


def low_contrast(page, scope: str, minimum: float = MIN_CONTRAST) -> list[str]:
    """The texts in `scope` under `minimum`:1, one readable line each; a text whose colours could not be
    measured (over a gradient, a colour syntax not understood) is listed too, rather than passed unseen."""
    found = contrasts(page, scope)
    assert found, f"no visible text in {scope!r}: the view is not open"
    return [f"{r['ratio']:.2f}:1 {r['what']} {r['text']!r} ({r['color']} on {r['background']}"
            f"{', ' + r['unsure'] if r['unsure'] else ''}, {r['fontSize']}) at {r['selector']}"
            for r in found if r["ratio"] < minimum or r["unsure"]]


def ratio_of(page, selector: str) -> float:
    """The contrast ratio of the first visible text in the first element matching `selector`."""
    found = contrasts(page, selector)
    assert found, f"no visible text in {selector!r}"
    return found[0]["ratio"]


class Themes:
    """Switch JupyterLab's theme and put back the one the server had (the theme is a user setting the
    server saves, and every UI test of the session shares that server)."""

    SETTING = "lab/api/settings/@jupyterlab/apputils-extension:themes"

    def __init__(self, page, lab):
        self.page, self.lab = page, lab
        self.original = self._saved() or THEMES["light"]
        self.current: str | None = None

    def _saved(self) -> str | None:
        request = urllib.request.Request(f"{self.lab['base']}/{self.SETTING}",
                                         headers={"Authorization": f"token {self.lab['token']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read()).get("settings", {}).get("theme")

    def use(self, theme: str, timeout: float = 60_000) -> None:
        """Switch to `theme` ('light', 'dark' or a theme's name); return once its CSS is applied."""
        name = THEMES.get(theme, theme)
        light = name != THEMES["dark"]
        page = self.page
        page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('apputils:change-theme')",
                               timeout=timeout)
        page.evaluate("() => window.jupyterapp.restored.then(() => true)")
        page.evaluate("name => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})", name)
        # Applied: the body says so and the theme's variables are in force (a light or a dark layout colour).
        page.wait_for_function(
            """([name, light]) => {
                const body = document.body;
                if (body.dataset.jpThemeName !== name || body.dataset.jpThemeLight !== String(light)) return false;
                const probe = document.createElement('div');
                probe.style.color = 'var(--jp-layout-color1)';
                body.append(probe);
                const m = /(\\d+)[,\\s]+(\\d+)[,\\s]+(\\d+)/.exec(getComputedStyle(probe).color);
                probe.remove();
                if (!m) return false;
                const level = (+m[1] + +m[2] + +m[3]) / 3;
                return light ? level > 128 : level < 128;
            }""",
            arg=[name, light], timeout=timeout)
        # A theme change shows Lab's splash screen over everything while the CSS loads: wait until it is gone.
        page.wait_for_function("() => !document.getElementById('jupyterlab-splash')", timeout=timeout)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.current = name

    def restore(self, timeout: float = 30) -> None:
        """Back to the theme the server had, and wait until the server saved it."""
        if self.current is None:
            return
        if self.current != self.original:
            self.use(self.original)
        deadline = time.monotonic() + timeout
        while (self._saved() or THEMES["light"]) != self.original:
            assert time.monotonic() < deadline, f"the theme setting was not put back to {self.original!r}"
            time.sleep(0.2)
        self.current = None
