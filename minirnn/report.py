"""The experiments' one-page report: every claim, its source, prediction, measurement, verdict.

Reads the NAME.json files the experiments wrote and writes report.md and report.html (images
embedded, so the HTML is a single file that can be mailed or attached). The source
document's claims that the experiments measured are gathered in their own section.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any


def _brief(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load(out_dir: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    results = []
    for f in sorted(Path(out_dir).glob("*.json")):
        if names and f.stem not in names:
            continue
        data = json.loads(f.read_text())
        if isinstance(data, dict) and "claim" in data:
            results.append(data)
    return results


def seed_claims(results: list[dict[str, Any]]) -> list[tuple[str, str, bool, str]]:
    """(experiment, claim, holds, evidence) for every source-document claim measured."""
    rows = []
    for r in results:
        measured = r.get("measured")
        found = measured.get("seed_claims", {}) if isinstance(measured, dict) else {}
        for claim, c in found.items():
            rows.append((r["name"], claim, bool(c["holds"]), c["evidence"]))
    return rows


def _cell(text: Any) -> str:
    """Text for a Markdown table cell: pipes escaped, so ||x|| does not split the row."""
    return str(text).replace("|", "\\|")


def _verdict(r: dict[str, Any]) -> str:
    return "PASS" if r.get("pass") else "FAIL"


def write(out_dir: Path, names: list[str] | None = None) -> Path:
    """Write out_dir/report.md and out_dir/report.html; return the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = load(out_dir, names)
    claims = seed_claims(results)
    md = ["# minirnn experiments", ""]
    n_pass = sum(bool(r.get("pass")) for r in results)
    confirmed = f"{n_pass} of {len(results)} experiments confirm their predictions."
    md.append(confirmed)
    md += ["", "| experiment | claim | source | measured | verdict |", "|---|---|---|---|---|"]
    for r in results:
        cells = [r["name"], r["claim"], r.get("source", ""), r.get("headline", ""), _verdict(r)]
        md.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if claims:
        md += [
            "",
            "## The source document's claims, measured",
            "",
            "| claim | experiment | holds? | evidence |",
        ]
        md.append("|---|---|---|---|")
        for name, claim, holds, evidence in claims:
            md.append(f"| {_cell(claim)} | {name} | {'yes' if holds else '**no**'} | {_cell(evidence)} |")
    for r in results:
        md += [
            "",
            f"## {r['name']}: {_verdict(r)}",
            "",
            f"**Claim.** {r['claim']}  ",
            f"**Source.** {r.get('source', '')}  ",
            f"**Prediction.** {_brief(r.get('prediction'))}  ",
            f"**Tolerance.** {_brief(r.get('tolerance'))}  ",
            f"**Measured.** {r.get('headline') or _brief(r.get('measured'))}  ",
            f"**Configuration.** {_brief(r.get('config'))}",
            "",
            f"![{r['name']}]({r.get('png', r['name'] + '.png')})",
        ]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    esc = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>minirnn experiments</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto;line-height:1.4}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}table{border-collapse:collapse}"
        ".PASS{color:#060;font-weight:bold}.FAIL{color:#a00;font-weight:bold}img{max-width:100%}</style>",
        "<h1>minirnn experiments</h1>",
        f"<p>{confirmed}</p>",
        "<table><tr><th>experiment</th><th>claim</th><th>measured</th><th>verdict</th></tr>",
    ]
    for r in results:
        v = _verdict(r)
        parts.append(
            f"<tr><td><a href='#{esc(r['name'])}'>{esc(r['name'])}</a></td><td>{esc(r['claim'])}</td>"
            f"<td>{esc(r.get('headline', ''))}</td><td class={v}>{v}</td></tr>"
        )
    parts.append("</table>")
    if claims:
        parts.append("<h2>The source document's claims, measured</h2><table>")
        parts.append("<tr><th>claim</th><th>experiment</th><th>holds?</th><th>evidence</th></tr>")
        for name, claim, holds, evidence in claims:
            cls = "PASS" if holds else "FAIL"
            parts.append(
                f"<tr><td>{esc(claim)}</td><td>{esc(name)}</td>"
                f"<td class={cls}>{'yes' if holds else 'no'}</td>"
                f"<td>{esc(evidence)}</td></tr>"
            )
        parts.append("</table>")
    for r in results:
        v = _verdict(r)
        parts.append(f"<h2 id='{esc(r['name'])}'>{esc(r['name'])}: <span class={v}>{v}</span></h2>")
        for key in ("claim", "source", "prediction", "tolerance"):
            parts.append(f"<p><b>{key}.</b> {esc(_brief(r.get(key), 600))}</p>")
        measured = r.get("headline") or _brief(r.get("measured"), 600)
        parts.append(f"<p><b>measured.</b> {esc(measured)}</p>")
        png = out_dir / r.get("png", r["name"] + ".png")
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<img alt='{esc(r['name'])}' src='data:image/png;base64,{b64}'>")
    (out_dir / "report.html").write_text("\n".join(parts) + "\n")
    return md_path
