//! `report.html` and `report.md`: one self-contained page (inline CSS, SVG and a small inline
//! script, no external asset, so it opens offline and anywhere) and its Markdown twin. Both are
//! built from the files a fit leaves — `model.json`, `selection.csv`, `clusters.json` — so
//! `segmix report DIR` rebuilds them without refitting. Every piece of user text is escaped.
//!
//! The page is complete without JavaScript. With it, the explorer (`explorer.js`, inlined) adds:
//! a tooltip for each point of the maps (its text, class, posterior and categorical values),
//! class filters (the legend, or a card's title: the map shows that class and the card is
//! highlighted), a searchable, sortable table of the rows, and a class-versus-class comparison.
//! It reads its data from a JSON block whose `<`, `>` and `&` are `\u` escapes, and writes user
//! text only through `textContent`, so no text of the table can become markup or script.

use std::fmt::Write as _;
use std::path::Path;

use crate::explain::{ClassReport, Clusters};
use crate::foundation::choice::Choice;
use crate::foundation::error::{Error, Result};
use crate::foundation::folder::{FolderWrite, Keep};
use crate::model::ModelFile;

use super::write_atomic;

/// One line of `selection.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionRow {
    pub k: usize,
    pub restart: usize,
    pub loglik: f64,
    pub bic: f64,
    pub icl: f64,
    pub aic: f64,
    /// The fit is degenerate (never selected; left out of the curves).
    pub degenerate: bool,
}

/// Reads `selection.csv` (by column name).
pub fn read_selection(path: &Path) -> Result<Vec<SelectionRow>> {
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header = r.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name).ok_or_else(|| bad(format!("no column {name:?}")));
    let (k, restart, loglik, bic, icl, aic) =
        (col("k")?, col("restart")?, col("loglik")?, col("bic")?, col("icl")?, col("aic")?);
    let degenerate = header.iter().position(|h| h == "degenerate");
    let mut rows = Vec::new();
    for (no, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let line = || bad(format!("line {}: not a selection row", no + 2));
        let num = |i: usize| rec.get(i).and_then(|v| v.parse::<f64>().ok()).ok_or_else(line);
        rows.push(SelectionRow {
            k: rec.get(k).and_then(|v| v.parse().ok()).ok_or_else(line)?,
            restart: rec.get(restart).and_then(|v| v.parse().ok()).ok_or_else(line)?,
            loglik: num(loglik)?,
            bic: num(bic)?,
            icl: num(icl)?,
            aic: num(aic)?,
            degenerate: degenerate.and_then(|i| rec.get(i)).is_some_and(|v| !v.is_empty()),
        });
    }
    Ok(rows)
}

/// Reads `clusters.json`.
pub fn read_clusters(path: &Path) -> Result<Clusters> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Model { path: path.to_path_buf(), message: e.to_string() })
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// User text in Markdown is inert: HTML escaped, every character that could open a link, an
/// image, emphasis, code or a heading backslash-escaped, line breaks made spaces.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' | '<' | '>' | '"' | '\'' => out.push_str(&escape(ch.encode_utf8(&mut [0; 4]))),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '!' | '#' | '|' | '~' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Class colours (Tableau 10), cycled past ten classes.
const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

fn color(class: usize) -> &'static str {
    PALETTE[(class.max(1) - 1) % PALETTE.len()]
}

fn title(c: &ClassReport) -> String {
    match &c.label {
        Some(l) => format!("Class {} — {}", c.class, l),
        None => format!("Class {}", c.class),
    }
}

/// Best (lowest) BIC and ICL per K over the eligible (non-degenerate) fits; a K whose every fit
/// is degenerate has no point.
fn curve(sel: &[SelectionRow]) -> Vec<(usize, f64, f64)> {
    let mut ks: Vec<usize> = sel.iter().map(|r| r.k).collect();
    ks.sort_unstable();
    ks.dedup();
    ks.iter()
        .filter_map(|&k| {
            let rows = sel.iter().filter(|r| r.k == k && !r.degenerate);
            let bic = rows.clone().map(|r| r.bic).fold(f64::INFINITY, f64::min);
            let icl = rows.map(|r| r.icl).fold(f64::INFINITY, f64::min);
            bic.is_finite().then_some((k, bic, icl))
        })
        .collect()
}

/// BIC and ICL against K, the selected K marked.
fn selection_svg(sel: &[SelectionRow], chosen: usize) -> String {
    let pts = curve(sel);
    let (w, h, l, r, t, b) = (560.0, 260.0, 70.0, 20.0, 20.0, 40.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot" role="img" aria-label="BIC and ICL against K">"#
    );
    if pts.is_empty() {
        return s + "</svg>";
    }
    let lo = pts.iter().flat_map(|p| [p.1, p.2]).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().flat_map(|p| [p.1, p.2]).fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1e-9);
    let (k0, k1) = (pts[0].0 as f64, pts[pts.len() - 1].0 as f64);
    let x = |k: f64| l + (w - l - r) * if k1 > k0 { (k - k0) / (k1 - k0) } else { 0.5 };
    let y = |v: f64| t + (h - t - b) * (1.0 - (v - lo) / span);
    let _ = write!(s, r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#999"/>"##, h - b, w - r, h - b);
    for p in &pts {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            x(p.0 as f64),
            h - b + 16.0,
            p.0
        );
    }
    let _ = write!(s, r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">K</text>"#, (w + l) / 2.0, h - 4.0);
    for (v, label) in [(hi, hi), (lo, lo)] {
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{:.0}</text>"#,
            l - 6.0,
            y(v) + 3.0,
            label
        );
    }
    for (idx, (name, col)) in [("BIC", "#4e79a7"), ("ICL", "#e15759")].iter().enumerate() {
        let path: Vec<String> =
            pts.iter().map(|p| format!("{:.1},{:.1}", x(p.0 as f64), y(if idx == 0 { p.1 } else { p.2 }))).collect();
        let _ = write!(s, r#"<polyline fill="none" stroke="{col}" stroke-width="2" points="{}"/>"#, path.join(" "));
        for p in &pts {
            let v = if idx == 0 { p.1 } else { p.2 };
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{col}"/>"#, x(p.0 as f64), y(v));
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" fill="{col}">{name}{}</text>"#,
            l + 10.0,
            h - b - 24.0 + 14.0 * idx as f64,
            if idx == 1 { " (BIC + 2 × entropy)" } else { "" }
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{0:.1}" y1="{t}" x2="{0:.1}" y2="{1}" stroke="#333" stroke-dasharray="4 3"/><text x="{0:.1}" y="{2}" font-size="11" text-anchor="end">selected K </text>"##,
        x(chosen as f64),
        h - b,
        t - 6.0 + 10.0
    );
    s + "</svg>"
}

/// Horizontal bars: (label, value, colour), values as fractions of the largest.
fn bars_svg(items: &[(String, f64, String, &str)], aria: &str) -> String {
    let (w, row) = (600.0, 22.0);
    let h = row * items.len() as f64 + 8.0;
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-12);
    let (label_w, bar_w) = (220.0, 210.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot" role="img" aria-label="{}">"#,
        escape(aria)
    );
    for (i, (label, v, text, col)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let bw = bar_w * v / max;
        let _ = write!(
            s,
            r#"<text x="{label_w}" y="{:.1}" font-size="12" text-anchor="end">{}</text><rect x="{}" y="{y:.1}" width="{bw:.1}" height="{}" fill="{col}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            y + 14.0,
            escape(label),
            label_w + 8.0,
            row - 6.0,
            label_w + 12.0 + bw,
            y + 14.0,
            escape(text)
        );
    }
    s + "</svg>"
}

/// Points coloured by class, scaled to the frame, with axis captions. Each point carries its row
/// and class for the explorer.
fn scatter_svg(points: &[crate::explain::MapPoint], x_caption: &str, y_caption: &str, aria: &str) -> String {
    let (w, h, m) = (560.0, 420.0, 30.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot map" role="img" aria-label="{}">"#,
        escape(aria)
    );
    if points.is_empty() {
        return s + "</svg>";
    }
    let (xl, xh) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.x), a.1.max(p.x)));
    let (yl, yh) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.y), a.1.max(p.y)));
    let sx = |v: f64| m + (w - 2.0 * m) * (v - xl) / (xh - xl).max(1e-12);
    let sy = |v: f64| h - m - (h - 2.0 * m) * (v - yl) / (yh - yl).max(1e-12);
    for p in points {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="{}" fill-opacity="0.6" data-row="{}" data-class="{}"/>"#,
            sx(p.x),
            sy(p.y),
            color(p.class),
            p.row,
            p.class
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"#,
        w / 2.0,
        h - 8.0,
        escape(x_caption),
        h / 2.0,
        h / 2.0,
        escape(y_caption)
    );
    s + "</svg>"
}

/// The rows on the first two principal axes of the continuous block, coloured by class.
fn map_svg(c: &Clusters) -> String {
    scatter_svg(
        &c.map,
        &format!("axis 1 ({:.0}% of the variance)", 100.0 * c.map_variance[0]),
        &format!("axis 2 ({:.0}%)", 100.0 * c.map_variance[1]),
        "map of the rows",
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px;\
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}table{border-collapse:collapse;\
margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}td.n{text-align:right}\
.plot{width:100%;max-width:600px;height:auto;display:block}.card{border:1px solid #ddd;border-left:6px solid var(--c);\
border-radius:6px;padding:.8rem 1.2rem;margin:1rem 0}.chip{display:inline-block;background:#eef;border-radius:10px;\
padding:.1rem .5rem;margin:.1rem;font-size:.9rem}.muted{color:#666;font-size:.9rem}blockquote{margin:.3rem 0;\
padding:.2rem .8rem;border-left:3px solid #ccc;color:#333}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.chip.cat{background:#e6f4ea}.kw{margin:.25rem 0}";

/// The over-represented levels of a class as "column = level" with their lift.
fn over_represented(c: &ClassReport) -> Vec<(String, f64)> {
    c.categorical
        .iter()
        .flat_map(|(col, prof)| {
            prof.over_represented.iter().filter_map(move |lvl| {
                prof.levels.iter().find(|l| &l.level == lvl).map(|l| (format!("{col} = {lvl}"), l.lift))
            })
        })
        .collect()
}

/// Whether the fit explains texts (some class has prototypes or the decoder ran).
fn has_text(c: &Clusters) -> bool {
    c.decoder.is_some() || c.classes.iter().any(|k| !k.prototypes.is_empty())
}

/// Prototypes each class should show: 0 (no note) for a fit without texts.
fn prototypes_wanted(c: &Clusters) -> usize {
    if has_text(c) { c.prototypes_per_class } else { 0 }
}

/// Why a class shows fewer prototypes than asked for (`wanted`, from [`prototypes_wanted`]; 0
/// when unknown or the fit has no text).
fn prototype_note(c: &ClassReport, wanted: usize) -> Option<String> {
    let shown = c.prototypes.len();
    (wanted > 0 && shown < wanted).then(|| match shown {
        0 => "No row of this class has a text, so it has no prototype.".to_string(),
        1 => "Only 1 distinct text among the rows of this class (rows whose most probable class it is); it is shown."
            .to_string(),
        s => format!(
            "Only {s} distinct texts among the rows of this class (rows whose most probable class it is); all are shown."
        ),
    })
}

fn card(html: &mut String, c: &ClassReport, wanted: usize) {
    let _ = write!(
        html,
        r#"<section class="card" id="class-{}" data-class="{}" style="--c:{}"><h3>{}</h3>"#,
        c.class,
        c.class,
        color(c.class),
        escape(&title(c))
    );
    if let Some(s) = &c.strategy {
        let _ = write!(html, "<p><em>{}</em></p>", escape(s));
    }
    let _ = write!(html, r#"<p class="muted">{} rows · weight {:.3}</p>"#, c.size, c.weight);
    let categories = over_represented(c);
    if !c.keywords.is_empty() || !c.contrast_keywords.is_empty() || !categories.is_empty() {
        html.push_str("<h4>Keywords</h4>");
        for (what, words, measure) in [
            ("what the embedding says (decoder)", &c.keywords, "score"),
            ("what the texts say (contrast)", &c.contrast_keywords, "z"),
        ] {
            if words.is_empty() {
                continue;
            }
            let _ = write!(html, r#"<p class="kw"><span class="muted">{what}:</span> "#);
            for k in words {
                let _ =
                    write!(html, r#"<span class="chip" title="{measure} {:.3}">{}</span>"#, k.score, escape(&k.word));
            }
            html.push_str("</p>");
        }
        if !categories.is_empty() {
            html.push_str(r#"<p class="kw"><span class="muted">categories (over-represented):</span> "#);
            for (label, lift) in &categories {
                let _ = write!(html, r#"<span class="chip cat" title="lift {lift:.2}">{}</span>"#, escape(label));
            }
            html.push_str("</p>");
        }
    }
    if let Some(note) = prototype_note(c, wanted) {
        let _ = write!(html, r#"<p class="muted">{}</p>"#, escape(&note));
    }
    if !c.prototypes.is_empty() {
        html.push_str("<h4>Prototypes (member texts nearest the class mean)</h4>");
        for p in &c.prototypes {
            let _ = write!(
                html,
                r#"<blockquote>{}<br><span class="muted">row {}, distance {:.3}, posterior {:.3}</span></blockquote>"#,
                escape(&p.text),
                p.row,
                p.distance,
                p.posterior
            );
        }
    }
    if !c.categorical.is_empty() {
        html.push_str(r#"<h4>Categories (share in the class, lift over all rows)</h4><div class="grid">"#);
        for (col, prof) in &c.categorical {
            let items: Vec<(String, f64, String, &str)> = prof
                .levels
                .iter()
                .map(|l| {
                    (
                        format!("{col} = {}", l.level),
                        l.share,
                        format!("{:.0}% · lift {:.2}", 100.0 * l.share, l.lift),
                        color(c.class),
                    )
                })
                .collect();
            html.push_str(&bars_svg(&items, col));
        }
        html.push_str("</div>");
    }
    if !c.metrics.is_empty() {
        html.push_str("<h4>Metrics</h4><table><tr><th>metric</th><th>class mean ± sd</th><th>overall mean ± sd</th><th>z</th></tr>");
        for (name, m) in &c.metrics {
            let _ = write!(
                html,
                r#"<tr><td>{}</td><td class="n">{:.4} ± {:.4}</td><td class="n">{:.4} ± {:.4}</td><td class="n">{:+.2}</td></tr>"#,
                escape(name),
                m.mean,
                m.sd,
                m.overall_mean,
                m.overall_sd,
                m.z
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</section>");
}

/// The class hierarchy as a dendrogram: leaves in tree order, each step at its own height.
fn dendrogram_svg(c: &Clusters) -> String {
    use crate::explain::hierarchy::leaf_order;
    let k = c.classes.len();
    let steps = c.hierarchy.len();
    let (w, h, bottom, top) = (560.0, 60.0 + 34.0 * steps as f64, 40.0, 16.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot" role="img" aria-label="class hierarchy">"#
    );
    let order = leaf_order(&c.hierarchy, k);
    let gap = (w - 40.0) / k.max(1) as f64;
    let y_of = |step: usize| h - bottom - (h - bottom - top) * step as f64 / steps.max(1) as f64;
    // Each live group's x and y (top of its stem), keyed by its smallest class.
    let mut pos: std::collections::HashMap<usize, (f64, f64)> = std::collections::HashMap::new();
    for (i, &leaf) in order.iter().enumerate() {
        let x = 20.0 + gap * (i as f64 + 0.5);
        pos.insert(leaf, (x, h - bottom));
        let name = c.classes.get(leaf - 1).map_or_else(|| format!("Class {leaf}"), title);
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="{}">{}</text>"#,
            h - bottom + 16.0,
            color(leaf),
            escape(&if name.chars().count() > 18 { name.chars().take(17).collect::<String>() + "…" } else { name })
        );
    }
    for (step, m) in c.hierarchy.iter().enumerate() {
        let (l, r) = (m.left.iter().min().copied().unwrap_or(1), m.right.iter().min().copied().unwrap_or(1));
        let (Some(&(xl, yl)), Some(&(xr, yr))) = (pos.get(&l), pos.get(&r)) else { continue };
        let y = y_of(step + 1);
        let _ = write!(
            s,
            r##"<path d="M{xl:.1},{yl:.1}V{y:.1}H{xr:.1}V{yr:.1}" fill="none" stroke="#555" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#666">ΔENT {:.1}</text>"##,
            (xl + xr) / 2.0,
            y - 4.0,
            m.gain
        );
        // The combined group takes the place of both, keyed by its smallest class.
        pos.remove(&l);
        pos.remove(&r);
        pos.insert(l.min(r), ((xl + xr) / 2.0, y));
    }
    s + "</svg>"
}

/// The summary rows shared by both formats.
fn summary(model: &ModelFile) -> Vec<(&'static str, String)> {
    let f = &model.fit;
    vec![
        ("rows", f.n_rows.to_string()),
        ("classes (K)", format!("{} (fitted {}..{}, {} restarts each)", f.k, f.k_range[0], f.k_range[1], f.n_init)),
        ("criterion", f.criterion.name().to_uppercase()),
        ("covariance", model.params.cov_type.name().to_string()),
        ("log-likelihood", format!("{:.3}", f.loglik)),
        ("BIC / ICL / AIC", format!("{:.1} / {:.1} / {:.1}", f.criteria.bic, f.criteria.icl, f.criteria.aic)),
        ("parameters", f.n_params.to_string()),
        ("iterations", format!("{} ({})", f.iterations, if f.converged { "converged" } else { "not converged" })),
        (
            "stability",
            f.stability.as_ref().map_or("not measured (model from an older segmix)".into(), |s| s.describe()),
        ),
        (
            "degenerate fits",
            if f.per_k.iter().all(|s| s.degenerate == 0) {
                "none".into()
            } else {
                f.per_k
                    .iter()
                    .filter(|s| s.degenerate > 0)
                    .map(|s| {
                        format!(
                            "K={}: {} of {} ({}){}",
                            s.k,
                            s.degenerate,
                            s.restarts,
                            s.reason.as_deref().unwrap_or(""),
                            if s.loglik.is_none() { ", so K has no criterion value" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
        ("time", format!("{:.2} s", f.seconds)),
        ("device", f.device.clone()),
        ("seed", f.seed.to_string()),
    ]
}

/// Builds `report.html`.
pub fn html(model: &ModelFile, sel: &[SelectionRow], c: &Clusters, data_name: &str, has_compare: bool) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>segmix report — {}</title><style>{CSS}{EXPLORER_CSS}</style></head><body>\
         <script>document.documentElement.classList.add(\"js\")</script>",
        escape(data_name)
    );
    let _ = write!(h, "<h1>segmix report — {}</h1>", escape(data_name));
    h.push_str("<h2>Fit</h2><table>");
    for (k, v) in summary(model) {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    h.push_str("</table>");
    if has_compare {
        h.push_str(r#"<p>Baselines: <a href="compare.md">compare.md</a> · <a href="compare.csv">compare.csv</a></p>"#);
    }
    h.push_str("<h2>Model selection</h2>");
    h.push_str(&selection_svg(sel, model.fit.k));
    h.push_str("<h2>Class sizes</h2>");
    let sizes: Vec<(String, f64, String, &str)> = c
        .classes
        .iter()
        .map(|k| (title(k), k.size as f64, format!("{} rows · weight {:.3}", k.size, k.weight), color(k.class)))
        .collect();
    h.push_str(&bars_svg(&sizes, "class sizes"));
    if !c.variables.is_empty() {
        h.push_str("<h2>Which variables separate the classes</h2>");
        let vars: Vec<(String, f64, String, &str)> = c
            .variables
            .iter()
            .map(|v| {
                (format!("{} ({})", v.variable, v.kind), v.power, format!("{} {:.3}", v.measure, v.power), "#76b7b2")
            })
            .collect();
        h.push_str(&bars_svg(&vars, "discriminative power"));
    }
    h.push_str("<h2>Map of the rows</h2>");
    if c.tsne.is_empty() {
        h.push_str(&map_svg(c));
    } else {
        let _ = write!(
            h,
            r#"<div class="grid"><div><p class="muted">PCA of the continuous block</p>{}</div><div><p class="muted">{}</p>{}</div></div>"#,
            map_svg(c),
            escape(c.tsne_of.as_deref().unwrap_or("t-SNE")),
            scatter_svg(&c.tsne, "t-SNE 1", "t-SNE 2", "t-SNE map of the rows")
        );
    }
    legend(&mut h, c);
    h.push_str("<h2>Classes</h2>");
    let wanted = prototypes_wanted(c);
    for k in &c.classes {
        card(&mut h, k, wanted);
    }
    explorer_sections(&mut h, c);
    if !c.hierarchy.is_empty() {
        h.push_str("<h2>Class hierarchy</h2>");
        h.push_str(
            r#"<p class="muted">Classes combined pairwise, the two the model can least tell apart first (largest drop in classification entropy, as mclust's clustCombi); the step number is the height. Cut it with <code>segmix report DIR --merge-to G</code>.</p>"#,
        );
        h.push_str(&dendrogram_svg(c));
    }
    if !c.outliers.is_empty() {
        let _ = write!(
            h,
            "<h2>Outliers</h2><p>{} rows with the lowest log-likelihood (lowest first): {}</p>",
            c.outliers.len(),
            c.outliers.iter().take(50).map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(d) = &c.decoder {
        let _ = write!(
            h,
            r#"<p class="muted">Keywords: Lasso decoder over {} terms (min_df {}), λ = {:.4} ({}), {} non-zero weights.</p>"#,
            d.terms,
            d.min_df,
            d.lambda,
            escape(&d.lambda_choice),
            d.nonzero
        );
    }
    let _ = write!(
        h,
        r#"<div id="tip" role="tooltip" hidden></div><script type="application/json" id="segmix-data">{}</script><script>{EXPLORER_JS}</script>"#,
        explorer_data(model, c)
    );
    h.push_str("</body></html>\n");
    h
}

/// The explorer's script (see the module documentation).
const EXPLORER_JS: &str = include_str!("explorer.js");

const EXPLORER_CSS: &str = ".js-only{display:none}.js .js-only{display:block}#tip{position:absolute;max-width:320px;\
background:#fff;border:1px solid #bbb;border-radius:4px;box-shadow:0 2px 8px rgba(0,0,0,.2);padding:.5rem .6rem;\
font-size:.85rem;z-index:10;pointer-events:none}.tip-head{font-weight:600;border-left:4px solid;padding-left:.4rem}\
.tip-text{margin:.3rem 0;white-space:pre-wrap}.legend button{font:inherit;font-size:.9rem;border:1px solid #ccc;\
border-left:10px solid var(--c);background:#fff;border-radius:4px;padding:.15rem .5rem;margin:.15rem;cursor:pointer}\
.legend button.off{opacity:.35}.no-js .legend button{cursor:default}section.card.hl{box-shadow:0 0 0 3px var(--c)}\
.js section.card h3{cursor:pointer}svg.map circle{cursor:pointer}#rows-table td{vertical-align:top;font-size:.9rem}\
#rows-table th[data-key]{cursor:pointer;user-select:none}#rows-table th[aria-sort=ascending]::after{content:' ▲'}\
#rows-table th[aria-sort=descending]::after{content:' ▼'}.cmp td,.cmp th{vertical-align:top}\
input[type=search],select{font:inherit;padding:.2rem .4rem;margin:.2rem .4rem .2rem 0}";

/// A colour key of the classes under the maps; with the explorer, buttons that filter.
fn legend(h: &mut String, c: &Clusters) {
    h.push_str(r#"<div class="legend" aria-label="classes">"#);
    for k in &c.classes {
        let _ = write!(
            h,
            r#"<button type="button" data-class="{}" style="--c:{}" aria-pressed="false">{}</button>"#,
            k.class,
            color(k.class),
            escape(&title(k))
        );
    }
    h.push_str("</div>");
}

/// The explorer's row table and class comparison (shown only with JavaScript).
fn explorer_sections(h: &mut String, c: &Clusters) {
    let options = |selected: usize| -> String {
        c.classes
            .iter()
            .map(|k| {
                format!(
                    r#"<option value="{}"{}>{}</option>"#,
                    k.class,
                    if k.class == selected { " selected" } else { "" },
                    escape(&title(k))
                )
            })
            .collect()
    };
    if !c.rows.is_empty() {
        let _ = write!(
            h,
            r#"<section class="js-only" id="rows"><h2>Rows</h2><input id="rows-search" type="search" placeholder="search texts and categories" aria-label="search the rows"><select id="rows-class" aria-label="class"><option value="">all classes</option>{}</select><p id="rows-count" class="muted"></p><table id="rows-table"><thead><tr><th data-key="row">row</th><th data-key="class">class</th><th data-key="posterior" aria-sort="descending">posterior</th>"#,
            options(0)
        );
        if has_text(c) {
            h.push_str(r#"<th data-key="text">text</th>"#);
        }
        for (j, col) in c.row_columns.iter().enumerate() {
            let _ = write!(h, r#"<th data-key="{j}">{}</th>"#, escape(col));
        }
        h.push_str(r#"</tr></thead><tbody id="rows-body"></tbody></table></section>"#);
    }
    if c.classes.len() >= 2 {
        let _ = write!(
            h,
            r#"<section class="js-only" id="compare"><h2>Compare two classes</h2><select id="cmp-a" aria-label="first class">{}</select> vs <select id="cmp-b" aria-label="second class">{}</select><div id="cmp-out"></div></section>"#,
            options(1),
            options(2)
        );
    }
}

/// JSON that is inert inside a `<script>` element: `<`, `>`, `&` and the line separators as
/// `\u` escapes (JSON.parse reads them back).
fn script_json(v: &serde_json::Value) -> String {
    let text = serde_json::to_string(v).expect("JSON serialises");
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The explorer's data: the sampled rows, and each class's summary for the comparison.
fn explorer_data(model: &ModelFile, c: &Clusters) -> String {
    use serde_json::json;
    let n = model.fit.n_rows;
    let sample = if c.rows.len() >= n {
        format!("all {n} rows")
    } else {
        format!("{} of the fit's {n} rows (the maps' seeded sample)", c.rows.len())
    };
    let classes: Vec<serde_json::Value> = c
        .classes
        .iter()
        .map(|k| {
            let categorical: serde_json::Map<String, serde_json::Value> = k
                .categorical
                .iter()
                .map(|(col, p)| {
                    (
                        col.clone(),
                        json!(p.levels.iter().map(|l| json!({"level": l.level, "share": l.share})).collect::<Vec<_>>()),
                    )
                })
                .collect();
            let metrics: serde_json::Map<String, serde_json::Value> =
                k.metrics.iter().map(|(m, x)| (m.clone(), json!({"mean": x.mean, "sd": x.sd}))).collect();
            json!({
                "class": k.class, "title": title(k), "color": color(k.class), "size": k.size, "weight": k.weight,
                "keywords": k.keywords, "contrast": k.contrast_keywords,
                "categorical": categorical, "metrics": metrics,
            })
        })
        .collect();
    script_json(&json!({
        "rows": c.rows, "columns": c.row_columns, "classes": classes, "has_text": has_text(c), "sample": sample,
    }))
}

/// Builds `report.md`.
pub fn markdown(model: &ModelFile, sel: &[SelectionRow], c: &Clusters, data_name: &str, has_compare: bool) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# segmix report — {}\n", md(data_name));
    let _ = writeln!(m, "| | |\n|---|---|");
    for (k, v) in summary(model) {
        let _ = writeln!(m, "| {k} | {} |", md(&v));
    }
    if has_compare {
        let _ = writeln!(m, "\nBaselines: [compare.md](compare.md)");
    }
    let _ = writeln!(m, "\n## Model selection\n\n| K | best BIC | best ICL |\n|---:|---:|---:|");
    for (k, bic, icl) in curve(sel) {
        let mark = if k == model.fit.k { " (selected)" } else { "" };
        let _ = writeln!(m, "| {k}{mark} | {bic:.1} | {icl:.1} |");
    }
    if !c.variables.is_empty() {
        let _ = writeln!(
            m,
            "\n## Which variables separate the classes\n\n| variable | kind | measure | power |\n|---|---|---|---:|"
        );
        for v in &c.variables {
            let _ = writeln!(m, "| {} | {} | {} | {:.3} |", md(&v.variable), v.kind, v.measure, v.power);
        }
    }
    let _ = writeln!(m, "\n## Classes");
    let wanted = prototypes_wanted(c);
    for k in &c.classes {
        let _ = writeln!(m, "\n### {}\n\n{} rows, weight {:.3}.", md(&title(k)), k.size, k.weight);
        if let Some(s) = &k.strategy {
            let _ = writeln!(m, "\n*{}*", md(s));
        }
        if !k.keywords.is_empty() {
            let words: Vec<String> = k.keywords.iter().map(|w| md(&w.word)).collect();
            let _ = writeln!(m, "\n**Keywords (what the embedding says):** {}", words.join(", "));
        }
        if !k.contrast_keywords.is_empty() {
            let words: Vec<String> = k.contrast_keywords.iter().map(|w| md(&w.word)).collect();
            let _ = writeln!(m, "\n**Keywords (what the texts say):** {}", words.join(", "));
        }
        if let Some(note) = prototype_note(k, wanted) {
            let _ = writeln!(m, "\n*{}*", md(&note));
        }
        if !k.prototypes.is_empty() {
            let _ = writeln!(m, "\n**Prototypes:**\n");
            for p in &k.prototypes {
                let _ = writeln!(m, "- {} *(distance {:.3}, posterior {:.3})*", md(&p.text), p.distance, p.posterior);
            }
        }
        for (col, prof) in &k.categorical {
            let levels: Vec<String> = prof
                .levels
                .iter()
                .map(|l| format!("{} {:.0}% (lift {:.2})", md(&l.level), 100.0 * l.share, l.lift))
                .collect();
            let _ = writeln!(m, "\n**{}:** {}", md(col), levels.join(", "));
        }
        if !k.metrics.is_empty() {
            let _ = writeln!(m, "\n| metric | class mean ± sd | overall mean ± sd | z |\n|---|---:|---:|---:|");
            for (name, x) in &k.metrics {
                let _ = writeln!(
                    m,
                    "| {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:+.2} |",
                    md(name),
                    x.mean,
                    x.sd,
                    x.overall_mean,
                    x.overall_sd,
                    x.z
                );
            }
        }
    }
    if !c.hierarchy.is_empty() {
        let _ = writeln!(
            m,
            "\n## Class hierarchy\n\nClasses combined pairwise by entropy (mclust's clustCombi), first step first.\n\n| step | combines | with | groups after | entropy drop |\n|---:|---|---|---:|---:|"
        );
        let list = |v: &[usize]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("+");
        for (i, s) in c.hierarchy.iter().enumerate() {
            let _ =
                writeln!(m, "| {} | {} | {} | {} | {:.2} |", i + 1, list(&s.left), list(&s.right), s.groups, s.gain);
        }
    }
    if !c.outliers.is_empty() {
        let _ = writeln!(
            m,
            "\n## Outliers\n\n{} rows, lowest log-likelihood first: {}",
            c.outliers.len(),
            c.outliers.iter().take(50).map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    m
}

/// The files a report is built from.
pub const SOURCES: [&str; 3] = ["model.json", "selection.csv", "clusters.json"];

/// Rebuilds `report.html` and `report.md` of the fit folder `dir` from its files, which are
/// checked against the folder's manifest first; the rest of the folder stays as it is.
pub fn write_report(dir: &Path) -> Result<()> {
    if !dir.join("model.json").is_file() {
        return Err(Error::Model {
            path: dir.to_path_buf(),
            message: "not a fit folder (it has no model.json); give the --out folder of `segmix fit`".into(),
        });
    }
    let tx = FolderWrite::begin(dir, Keep::Others)?;
    let manifest = tx.check(&SOURCES)?;
    let has_compare = manifest.map_or_else(|| dir.join("compare.md").exists(), |m| m.lists("compare.md"));
    write_report_from(dir, tx.dir(), has_compare)?;
    tx.commit()
}

/// Writes `report.html` and `report.md` into `to` from the fit's files in `from`. The report links
/// `compare.md` when `has_compare`.
pub fn write_report_from(from: &Path, to: &Path, has_compare: bool) -> Result<()> {
    let model = ModelFile::load(&from.join("model.json"))?;
    let sel = read_selection(&from.join("selection.csv"))?;
    let clusters = read_clusters(&from.join("clusters.json"))?;
    if clusters.classes.len() != model.params.k {
        return Err(Error::Model {
            path: from.join("clusters.json"),
            message: format!(
                "describes {} classes but model.json has {}; the two files come from different fits. Fit again",
                clusters.classes.len(),
                model.params.k
            ),
        });
    }
    let name = clusters.data.clone();
    write_atomic(&to.join("report.html"), |w| {
        w.write_all(html(&model, &sel, &clusters, &name, has_compare).as_bytes())
    })?;
    write_atomic(&to.join("report.md"), |w| {
        w.write_all(markdown(&model, &sel, &clusters, &name, has_compare).as_bytes())
    })
}
