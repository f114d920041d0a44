//! Small summaries of slices.

/// Index and value of the largest entry (the first on ties).
pub fn argmax(r: &[f64]) -> (usize, f64) {
    r.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { 0.5 * (v[m - 1] + v[m]) }
}

/// Weighted mean and standard deviation (population form) of `(weight, value)` pairs, scaled so
/// that values anywhere in f64's range overflow neither the sums nor the squares: the mean as
/// Σ (w/W) v, the sd as m·√(Σ (w/W) ((v − mean)/m)²) with m the largest deviation. No weight:
/// (NaN, NaN).
pub fn mean_sd(pairs: &[(f64, f64)]) -> (f64, f64) {
    let total: f64 = pairs.iter().map(|p| p.0).sum();
    if total <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = pairs.iter().map(|&(w, v)| w / total * v).sum::<f64>();
    let m = pairs.iter().filter(|p| p.0 > 0.0).map(|&(_, v)| (v - mean).abs()).fold(0.0, f64::max);
    if m == 0.0 {
        return (mean, 0.0);
    }
    (mean, m * pairs.iter().map(|&(w, v)| w / total * ((v - mean) / m).powi(2)).sum::<f64>().sqrt())
}

/// The (total weight, mean, population sd) of two sets of values from each set's, as [`mean_sd`]
/// computes them: on the scale of their spread, so that neither the squares nor the sums
/// overflow. A set of no weight leaves the other unchanged.
pub fn merge_mean_sd(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64, f64) {
    if b.0 <= 0.0 {
        return a;
    }
    if a.0 <= 0.0 {
        return b;
    }
    let w = a.0 + b.0;
    let (wa, wb) = (a.0 / w, b.0 / w);
    let mean = wa * a.1 + wb * b.1;
    let (da, db) = (a.1 - mean, b.1 - mean);
    let m = [a.2, b.2, da.abs(), db.abs()].into_iter().fold(0.0, f64::max);
    if m == 0.0 {
        return (w, mean, 0.0);
    }
    let sq = |v: f64| (v / m).powi(2);
    (w, mean, m * (wa * (sq(a.2) + sq(da)) + wb * (sq(b.2) + sq(db))).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_neither_overflows_nor_loses_small_data() {
        let (m, s) = mean_sd(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (1.0, 4.0)]);
        assert!((m - 2.5).abs() < 1e-15 && (s - 1.25f64.sqrt()).abs() < 1e-15);
        let (m, s) = mean_sd(&[(1.0, 1e300), (1.0, 3e300)]);
        assert!((m - 2e300).abs() < 1e286 && (s - 1e300).abs() < 1e286, "{m} {s}");
        let (m, s) = mean_sd(&[(0.5, -1.7e308), (0.5, 1.7e308)]);
        assert!(m.abs() < 1e293 && (s - 1.7e308).abs() < 1e294, "{m} {s}");
        assert_eq!(mean_sd(&[(1.0, 5.0)]), (5.0, 0.0));
        assert!(mean_sd(&[(0.0, 5.0)]).0.is_nan());
    }
}
