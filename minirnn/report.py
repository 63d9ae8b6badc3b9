"""The experiments' one-page report: every claim, its source, prediction, measurement, verdict.

Reads the NAME.json files the experiments wrote and writes report.md and report.html (images
embedded, so the HTML is a single file that can be mailed or attached).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any


def _brief(value: Any, limit: int = 160) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load(out_dir: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    files = sorted(Path(out_dir).glob("*.json"))
    results = []
    for f in files:
        if names and f.stem not in names:
            continue
        data = json.loads(f.read_text())
        if isinstance(data, dict) and "claim" in data:
            results.append(data)
    return results


def write(out_dir: Path, names: list[str] | None = None) -> Path:
    """Write out_dir/report.md and out_dir/report.html; return the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = load(out_dir, names)
    md = ["# minirnn experiments", ""]
    md.append(f"{sum(bool(r.get('pass')) for r in results)} of {len(results)} claims hold as predicted.")
    md += ["", "| experiment | claim | source | verdict |", "|---|---|---|---|"]
    for r in results:
        md.append(
            f"| {r['name']} | {r['claim']} | {r.get('source', '')} | {'PASS' if r.get('pass') else 'FAIL'} |"
        )
    for r in results:
        md += [
            "",
            f"## {r['name']}: {'PASS' if r.get('pass') else 'FAIL'}",
            "",
            f"**Claim.** {r['claim']}  ",
            f"**Source.** {r.get('source', '')}  ",
            f"**Prediction.** {_brief(r.get('prediction'))}  ",
            f"**Tolerance.** {_brief(r.get('tolerance'))}  ",
            f"**Measured.** {_brief(r.get('measured'), 400)}",
            "",
            f"![{r['name']}]({r.get('png', r['name'] + '.png')})",
        ]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    parts = [
        "<!doctype html><meta charset='utf-8'><title>minirnn experiments</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}"
        "td,th{border:1px solid #ccc;padding:4px}table{border-collapse:collapse}"
        ".PASS{color:#060}.FAIL{color:#a00}img{max-width:100%}</style>",
        "<h1>minirnn experiments</h1><table><tr><th>experiment</th><th>claim</th><th>verdict</th></tr>",
    ]
    for r in results:
        v = "PASS" if r.get("pass") else "FAIL"
        name, claim = html.escape(r["name"]), html.escape(r["claim"])
        parts.append(f"<tr><td>{name}</td><td>{claim}</td><td class={v}>{v}</td></tr>")
    parts.append("</table>")
    for r in results:
        v = "PASS" if r.get("pass") else "FAIL"
        parts.append(f"<h2>{html.escape(r['name'])}: <span class={v}>{v}</span></h2>")
        for key in ("claim", "source", "prediction", "tolerance", "measured"):
            parts.append(f"<p><b>{key}.</b> {html.escape(_brief(r.get(key), 600))}</p>")
        png = out_dir / r.get("png", r["name"] + ".png")
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(r['name'])}' src='data:image/png;base64,{b64}'>")
    (out_dir / "report.html").write_text("\n".join(parts) + "\n")
    return md_path
