//! Profiles and discriminative power: each categorical column's class distribution with its lift
//! over the population (and Cramér's V of the column against the classes), each metric's class
//! mean ± sd against the overall mean in the metric's original units (and its η²), and the η² of
//! the reduced text embedding.

use std::collections::BTreeMap;

use super::{CategoricalProfile, Fitted, LevelShare, MetricProfile, Power, TextSpace};
use crate::backend::MixtureData;
use crate::foundation::MISSING_CODE;
use crate::foundation::stats::mean_sd;

/// Per class, every categorical column's profile; each column's Cramér's V goes to `variables`.
pub(super) fn categorical(
    fit: &Fitted,
    labels: &[usize],
    variables: &mut Vec<Power>,
) -> Vec<BTreeMap<String, CategoricalProfile>> {
    let (data, model) = (fit.data, fit.model);
    let (n, k) = (data.n, model.params.k);
    let post = &fit.posteriors.resp;
    let j = data.n_cat();
    let mut cat_profiles = vec![BTreeMap::new(); k];
    for (jj, cs) in model.schema.categorical.iter().enumerate() {
        let l = data.n_levels[jj];
        let mut weighted = vec![0.0; k * l];
        let mut pop = vec![0.0; l];
        let mut hard = vec![0.0; k * l];
        for i in 0..n {
            let code = data.codes[i * j + jj];
            if code == MISSING_CODE {
                continue;
            }
            let c = code as usize;
            pop[c] += 1.0;
            hard[labels[i] * l + c] += 1.0;
            for kk in 0..k {
                weighted[kk * l + c] += post[i * k + kk];
            }
        }
        let total: f64 = pop.iter().sum();
        for kk in 0..k {
            let row_total: f64 = weighted[kk * l..(kk + 1) * l].iter().sum();
            let levels: Vec<LevelShare> = (0..l)
                .map(|c| {
                    let share = weighted[kk * l + c] / row_total.max(1e-300);
                    let population = pop[c] / total.max(1.0);
                    LevelShare {
                        level: cs.levels[c].clone(),
                        share,
                        population,
                        lift: if population > 0.0 { share / population } else { 0.0 },
                    }
                })
                .collect();
            cat_profiles[kk].insert(cs.name.clone(), CategoricalProfile::new(levels));
        }
        variables.push(Power {
            variable: cs.name.clone(),
            kind: "categorical".into(),
            measure: "cramers_v".into(),
            power: cramers_v(&hard, k, l),
        });
    }
    cat_profiles
}

/// Per class, every metric's profile in its original units; each metric's η² goes to
/// `variables`.
pub(super) fn metrics(
    fit: &Fitted,
    labels: &[usize],
    variables: &mut Vec<Power>,
) -> Vec<BTreeMap<String, MetricProfile>> {
    let (data, model) = (fit.data, fit.model);
    let (n, p, k) = (data.n, data.p, model.params.k);
    let post = &fit.posteriors.resp;
    let observed = |i: usize, c: usize| data.patterns[data.pattern[i] as usize][c];
    let mut metric_profiles = vec![BTreeMap::new(); k];
    for (jn, ns) in model.schema.numeric.iter().enumerate() {
        let c = model.schema.numeric_coordinate(jn);
        // Means and sds in the metric's original units (a log-modelled metric is averaged after
        // exp, not exp'd after averaging); z in the modelled units.
        let vals: Vec<(usize, f64, f64)> = (0..n)
            .filter(|&i| observed(i, c))
            .map(|i| (i, data.x[i * p + c], ns.original(data.x[i * p + c])))
            .collect();
        // Overflow-safe (metrics up to f64's range): see `stats::mean_sd`.
        let moments = |w: &dyn Fn(usize) -> f64| {
            let (mz, sz) = mean_sd(&vals.iter().map(|v| (w(v.0), v.1)).collect::<Vec<_>>());
            let (my, sy) = mean_sd(&vals.iter().map(|v| (w(v.0), v.2)).collect::<Vec<_>>());
            (mz, sz, my, sy)
        };
        let (m_all, sd_all, y_all, ysd_all) = moments(&|_| 1.0);
        for (kk, prof) in metric_profiles.iter_mut().enumerate() {
            let (mean, _, y, ysd) = moments(&|i| post[i * k + kk]);
            prof.insert(
                ns.name.clone(),
                MetricProfile {
                    mean: y,
                    sd: ysd,
                    overall_mean: y_all,
                    overall_sd: ysd_all,
                    z: if sd_all > 0.0 { (mean - m_all) / sd_all } else { 0.0 },
                },
            );
        }
        let cols = [c];
        variables.push(Power {
            variable: ns.name.clone(),
            kind: "metric".into(),
            measure: "eta_squared".into(),
            power: eta_squared(data, labels, k, &cols, &[1.0]),
        });
    }
    metric_profiles
}

/// The η² of the reduced text embedding: pooled over the text scores, each weighted by its
/// variance (scale²).
pub(super) fn text_power(fit: &Fitted, t: &TextSpace, labels: &[usize]) -> Power {
    let cols: Vec<usize> = (0..t.d).collect();
    let weights: Vec<f64> = t.scale.iter().map(|s| s * s).collect();
    Power {
        variable: fit.table.text.as_ref().map_or("text".to_string(), |c| c.name.clone()),
        kind: "text".into(),
        measure: "eta_squared".into(),
        power: eta_squared(fit.data, labels, fit.model.params.k, &cols, &weights),
    }
}

/// Cramér's V of a K × L contingency table of counts.
fn cramers_v(table: &[f64], k: usize, l: usize) -> f64 {
    let n: f64 = table.iter().sum();
    if n == 0.0 || k < 2 || l < 2 {
        return 0.0;
    }
    let rows: Vec<f64> = (0..k).map(|a| table[a * l..(a + 1) * l].iter().sum()).collect();
    let cols: Vec<f64> = (0..l).map(|b| (0..k).map(|a| table[a * l + b]).sum()).collect();
    let mut chi2 = 0.0;
    for a in 0..k {
        for b in 0..l {
            let e = rows[a] * cols[b] / n;
            if e > 0.0 {
                chi2 += (table[a * l + b] - e).powi(2) / e;
            }
        }
    }
    let r = rows.iter().filter(|&&x| x > 0.0).count().min(cols.iter().filter(|&&x| x > 0.0).count());
    if r < 2 { 0.0 } else { (chi2 / (n * (r - 1) as f64)).sqrt().min(1.0) }
}

/// η² = between-class / total sum of squares of the observed values of `cols` (pooled, column
/// `cols[t]` weighted by `weights[t]`), by the hard labels.
fn eta_squared(data: &MixtureData, labels: &[usize], k: usize, cols: &[usize], weights: &[f64]) -> f64 {
    let p = data.p;
    let (mut between, mut total) = (0.0, 0.0);
    for (&c, &wt) in cols.iter().zip(weights) {
        let mut sum = vec![0.0; k];
        let mut cnt = vec![0.0; k];
        let (mut s, mut s2, mut m) = (0.0, 0.0, 0.0);
        for i in 0..data.n {
            if !data.patterns[data.pattern[i] as usize][c] {
                continue;
            }
            let v = data.x[i * p + c];
            sum[labels[i]] += v;
            cnt[labels[i]] += 1.0;
            s += v;
            s2 += v * v;
            m += 1.0;
        }
        if m == 0.0 {
            continue;
        }
        let mean = s / m;
        total += wt * (s2 - m * mean * mean);
        between +=
            wt * (0..k).filter(|&a| cnt[a] > 0.0).map(|a| cnt[a] * (sum[a] / cnt[a] - mean).powi(2)).sum::<f64>();
    }
    if total > 0.0 { (between / total).clamp(0.0, 1.0) } else { 0.0 }
}
