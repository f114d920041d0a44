//! The prompt that asks an LLM to name a class, built from its profile.

use super::ClassReport;

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// The prompt that asks an LLM for a label and a one-sentence strategy.
pub(super) fn prompt(c: &ClassReport, k: usize, n: usize, text_col: Option<&str>) -> String {
    let mut s = String::from(
        "You are a marketing analyst. A clustering model split a table of ads into segments. \
         Name the segment below and suggest how to act on it.\n\n",
    );
    s += &format!("Segment {} of {k}: {} of {n} rows ({} of the weight).\n", c.class, c.size, pct(c.weight));
    if !c.keywords.is_empty() {
        let words: Vec<&str> = c.keywords.iter().map(|w| w.word.as_str()).collect();
        s += &format!("Characteristic words of its {}: {}.\n", text_col.unwrap_or("text"), words.join(", "));
    }
    if !c.contrast_keywords.is_empty() {
        let words: Vec<&str> = c.contrast_keywords.iter().map(|w| w.word.as_str()).collect();
        s += &format!("Words its texts use more often than the other segments': {}.\n", words.join(", "));
    }
    if !c.prototypes.is_empty() {
        s += "Typical texts:\n";
        for pr in &c.prototypes {
            s += &format!("- \"{}\"\n", pr.text);
        }
    }
    let mut cats = Vec::new();
    for (col, prof) in &c.categorical {
        for lvl in &prof.over_represented {
            if let Some(l) = prof.levels.iter().find(|l| &l.level == lvl) {
                cats.push(format!("{col} = {lvl} ({} of the segment, {:.1}× the overall rate)", pct(l.share), l.lift));
            }
        }
    }
    if !cats.is_empty() {
        s += &format!("Over-represented: {}.\n", cats.join("; "));
    }
    let mets: Vec<String> = c
        .metrics
        .iter()
        .map(|(name, m)| {
            let rel = if m.overall_mean != 0.0 { (m.mean / m.overall_mean - 1.0) * 100.0 } else { 0.0 };
            format!("{name} {:.3} vs {:.3} overall ({rel:+.0}%)", m.mean, m.overall_mean)
        })
        .collect();
    if !mets.is_empty() {
        s += &format!("Metrics, segment mean vs overall: {}.\n", mets.join("; "));
    }
    s += "\nAnswer with JSON only: {\"label\": \"<a 2-5 word name>\", \"strategy\": \"<one sentence>\"}";
    s
}
