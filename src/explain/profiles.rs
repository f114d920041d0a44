//! Profiles and discriminative power: each categorical column's class distribution with its lift
//! over the population (and Cramér's V of the column against the classes), each metric's class
//! mean ± sd against the overall mean in the metric's original units (and its η²), the η² of the
//! reduced text embedding, and each class's size and prototypes.
//!
//! All of it is computed from [`RowStats`]: sums over the rows that add up ([`RowStats::merge`]),
//! so a fit over shards explains its classes with the numbers one machine would compute on the
//! whole table (to rounding): each shard sums its rows, the driver merges the sums in shard order
//! and finishes them here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CategoricalProfile, ExplainOptions, Fitted, LevelShare, MetricProfile, Power, Prototype, TextSpace};
use crate::foundation::MISSING_CODE;
use crate::foundation::stats::{mean_sd, merge_mean_sd};
use crate::model::ModelFile;

/// Weighted moments of a set of values: their total weight, mean and (population) sd.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub weight: f64,
    #[serde(with = "finite_or_null")]
    pub mean: f64,
    #[serde(with = "finite_or_null")]
    pub sd: f64,
}

/// A float that may be NaN or infinite (a moment of no weight, a metric overflowing its original
/// units) as JSON: `null` stands for any non-finite value and reads back as NaN.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

impl Moments {
    /// The moments of `(weight, value)` pairs (overflow-safe: see [`mean_sd`]).
    fn of(pairs: &[(f64, f64)]) -> Moments {
        let weight: f64 = pairs.iter().map(|p| p.0).sum();
        let (mean, sd) = mean_sd(pairs);
        Moments { weight: weight.max(0.0), mean, sd }
    }

    /// The moments of both sets of values.
    fn merge(self, o: Moments) -> Moments {
        let (weight, mean, sd) = merge_mean_sd((self.weight, self.mean, self.sd), (o.weight, o.mean, o.sd));
        Moments { weight, mean, sd }
    }
}

/// One categorical column's level counts: posterior-weighted and by most probable class (K × L,
/// classes outer), and over all rows (L).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelCounts {
    pub weighted: Vec<f64>,
    pub hard: Vec<f64>,
    pub population: Vec<f64>,
}

/// The sums behind η² of one coordinate: per class (by most probable class) the count and sum of
/// its observed values, and their count, sum and sum of squares over all rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtaSums {
    pub count: Vec<f64>,
    pub sum: Vec<f64>,
    pub m: f64,
    pub s: f64,
    pub s2: f64,
}

/// One metric's moments: in standardized units (`z`) and in its original units (`y`), over all
/// rows and per class weighted by the posteriors, with its η² sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    pub z: Moments,
    pub y: Moments,
    pub class_z: Vec<Moments>,
    pub class_y: Vec<Moments>,
    pub eta: EtaSums,
}

/// What the explanation reads of every row, as sums that add up across shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowStats {
    pub rows: usize,
    /// Rows whose most probable class is each class.
    pub sizes: Vec<usize>,
    pub categorical: Vec<LevelCounts>,
    pub metrics: Vec<MetricStats>,
    /// η² sums of each text score (none without text).
    pub text: Vec<EtaSums>,
    /// Per class, the nearest distinct member texts by Euclidean and by Mahalanobis distance
    /// (the candidates a merge keeps the nearest of).
    pub prototypes: Vec<(Vec<Prototype>, Vec<Prototype>)>,
}

impl RowStats {
    /// The sums over the rows of `fit`, whose first row is row `first_row` of the whole table.
    pub fn of(fit: &Fitted, opts: &ExplainOptions, first_row: usize) -> RowStats {
        let (data, model) = (fit.data, fit.model);
        let (n, p, k) = (data.n, data.p, model.params.k);
        let labels = fit.posteriors.labels();
        let post = &fit.posteriors.resp;
        let mut sizes = vec![0; k];
        labels.iter().for_each(|&l| sizes[l] += 1);
        let observed = |i: usize, c: usize| data.patterns[data.pattern[i] as usize][c];
        let eta = |c: usize| {
            let mut e = EtaSums { count: vec![0.0; k], sum: vec![0.0; k], m: 0.0, s: 0.0, s2: 0.0 };
            for i in (0..n).filter(|&i| observed(i, c)) {
                let v = data.x[i * p + c];
                e.sum[labels[i]] += v;
                e.count[labels[i]] += 1.0;
                e.s += v;
                e.s2 += v * v;
                e.m += 1.0;
            }
            e
        };
        let j = data.n_cat();
        let categorical = (0..j)
            .map(|jj| {
                let l = data.n_levels[jj];
                let mut c =
                    LevelCounts { weighted: vec![0.0; k * l], hard: vec![0.0; k * l], population: vec![0.0; l] };
                for i in 0..n {
                    let code = data.codes[i * j + jj];
                    if code == MISSING_CODE {
                        continue;
                    }
                    let level = code as usize;
                    c.population[level] += 1.0;
                    c.hard[labels[i] * l + level] += 1.0;
                    for kk in 0..k {
                        c.weighted[kk * l + level] += post[i * k + kk];
                    }
                }
                c
            })
            .collect();
        let metrics = model
            .schema
            .numeric
            .iter()
            .enumerate()
            .map(|(jn, ns)| {
                let c = model.schema.numeric_coordinate(jn);
                // Means and sds in the metric's original units (a log-modelled metric is
                // averaged after exp, not exp'd after averaging); z in the modelled units.
                let vals: Vec<(usize, f64, f64)> = (0..n)
                    .filter(|&i| observed(i, c))
                    .map(|i| (i, data.x[i * p + c], ns.original(data.x[i * p + c])))
                    .collect();
                let moments = |w: &dyn Fn(usize) -> f64| {
                    let z = Moments::of(&vals.iter().map(|v| (w(v.0), v.1)).collect::<Vec<_>>());
                    let y = Moments::of(&vals.iter().map(|v| (w(v.0), v.2)).collect::<Vec<_>>());
                    (z, y)
                };
                let (z, y) = moments(&|_| 1.0);
                let (class_z, class_y) = (0..k).map(|kk| moments(&|i| post[i * k + kk])).unzip();
                MetricStats { z, y, class_z, class_y, eta: eta(c) }
            })
            .collect();
        let text = TextSpace::of(fit);
        let mut prototypes = vec![(Vec::new(), Vec::new()); k];
        if let Some(col) = text.texts() {
            prototypes = super::prototypes::prototypes(fit, &text, col, &labels, opts);
            for pr in prototypes.iter_mut().flat_map(|(a, b)| a.iter_mut().chain(b.iter_mut())) {
                pr.row += first_row;
            }
        }
        RowStats { rows: n, sizes, categorical, metrics, text: (0..text.d).map(eta).collect(), prototypes }
    }

    /// The sums over both sets of rows (`o`'s after `self`'s), keeping the `prototypes` nearest
    /// distinct texts of each class.
    pub fn merge(mut self, o: RowStats, prototypes: usize) -> RowStats {
        let add = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        let add_eta = |a: &mut EtaSums, b: &EtaSums| {
            add(&mut a.count, &b.count);
            add(&mut a.sum, &b.sum);
            (a.m, a.s, a.s2) = (a.m + b.m, a.s + b.s, a.s2 + b.s2);
        };
        self.rows += o.rows;
        self.sizes.iter_mut().zip(&o.sizes).for_each(|(a, b)| *a += b);
        for (a, b) in self.categorical.iter_mut().zip(&o.categorical) {
            add(&mut a.weighted, &b.weighted);
            add(&mut a.hard, &b.hard);
            add(&mut a.population, &b.population);
        }
        for (a, b) in self.metrics.iter_mut().zip(&o.metrics) {
            (a.z, a.y) = (a.z.merge(b.z), a.y.merge(b.y));
            a.class_z.iter_mut().zip(&b.class_z).for_each(|(x, y)| *x = x.merge(*y));
            a.class_y.iter_mut().zip(&b.class_y).for_each(|(x, y)| *x = x.merge(*y));
            add_eta(&mut a.eta, &b.eta);
        }
        self.text.iter_mut().zip(&o.text).for_each(|(a, b)| add_eta(a, b));
        for (a, b) in self.prototypes.iter_mut().zip(o.prototypes) {
            a.0 = nearest_of(std::mem::take(&mut a.0), b.0, prototypes);
            a.1 = nearest_of(std::mem::take(&mut a.1), b.1, prototypes);
        }
        self
    }
}

/// The `n` nearest distinct texts of two candidate lists (ties to the earlier row).
fn nearest_of(a: Vec<Prototype>, b: Vec<Prototype>, n: usize) -> Vec<Prototype> {
    let mut all: Vec<Prototype> = a.into_iter().chain(b).collect();
    all.sort_by(|x, y| x.distance.total_cmp(&y.distance).then(x.row.cmp(&y.row)));
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert(p.text.clone()));
    all.truncate(n);
    all
}

/// Per class, every categorical column's profile; each column's Cramér's V goes to `variables`.
pub(super) fn categorical(
    model: &ModelFile,
    stats: &RowStats,
    variables: &mut Vec<Power>,
) -> Vec<BTreeMap<String, CategoricalProfile>> {
    let k = model.params.k;
    let mut cat_profiles = vec![BTreeMap::new(); k];
    for (cs, counts) in model.schema.categorical.iter().zip(&stats.categorical) {
        let l = cs.levels.len();
        let total: f64 = counts.population.iter().sum();
        for kk in 0..k {
            let row_total: f64 = counts.weighted[kk * l..(kk + 1) * l].iter().sum();
            let levels: Vec<LevelShare> = (0..l)
                .map(|c| {
                    let share = counts.weighted[kk * l + c] / row_total.max(1e-300);
                    let population = counts.population[c] / total.max(1.0);
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
            power: cramers_v(&counts.hard, k, l),
        });
    }
    cat_profiles
}

/// Per class, every metric's profile in its original units; each metric's η² goes to
/// `variables`.
pub(super) fn metrics(
    model: &ModelFile,
    stats: &RowStats,
    variables: &mut Vec<Power>,
) -> Vec<BTreeMap<String, MetricProfile>> {
    let k = model.params.k;
    let finite = |m: Moments| if m.weight > 0.0 { (m.mean, m.sd) } else { (f64::NAN, f64::NAN) };
    let mut metric_profiles = vec![BTreeMap::new(); k];
    for (ns, ms) in model.schema.numeric.iter().zip(&stats.metrics) {
        let ((m_all, sd_all), (y_all, ysd_all)) = (finite(ms.z), finite(ms.y));
        for (kk, prof) in metric_profiles.iter_mut().enumerate() {
            let ((mean, _), (y, ysd)) = (finite(ms.class_z[kk]), finite(ms.class_y[kk]));
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
        variables.push(Power {
            variable: ns.name.clone(),
            kind: "metric".into(),
            measure: "eta_squared".into(),
            power: eta_squared(&[(&ms.eta, 1.0)]),
        });
    }
    metric_profiles
}

/// The η² of the reduced text embedding: pooled over the text scores, each weighted by its
/// variance (scale²).
pub(super) fn text_power(name: String, stats: &RowStats, scale: &[f64]) -> Power {
    let parts: Vec<(&EtaSums, f64)> = stats.text.iter().zip(scale).map(|(e, s)| (e, s * s)).collect();
    Power { variable: name, kind: "text".into(), measure: "eta_squared".into(), power: eta_squared(&parts) }
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

/// η² = between-class / total sum of squares of the observed values of some coordinates (pooled,
/// each weighted), by the hard labels.
fn eta_squared(parts: &[(&EtaSums, f64)]) -> f64 {
    let (mut between, mut total) = (0.0, 0.0);
    for &(e, wt) in parts {
        if e.m == 0.0 {
            continue;
        }
        let mean = e.s / e.m;
        total += wt * (e.s2 - e.m * mean * mean);
        between += wt
            * (0..e.count.len())
                .filter(|&a| e.count[a] > 0.0)
                .map(|a| e.count[a] * (e.sum[a] / e.count[a] - mean).powi(2))
                .sum::<f64>();
    }
    if total > 0.0 { (between / total).clamp(0.0, 1.0) } else { 0.0 }
}
