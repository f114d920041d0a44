//! Agreement between two partitions of the same rows: adjusted Rand index and normalized
//! mutual information (arithmetic normalisation, scikit-learn's default).

use std::collections::HashMap;

/// Cell, row and column counts of the contingency table.
type Contingency = (HashMap<(u32, u32), f64>, HashMap<u32, f64>, HashMap<u32, f64>);

fn contingency(a: &[u32], b: &[u32]) -> Contingency {
    assert_eq!(a.len(), b.len(), "partitions of different lengths");
    let mut cells = HashMap::new();
    let mut rows = HashMap::new();
    let mut cols = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *cells.entry((x, y)).or_insert(0.0) += 1.0;
        *rows.entry(x).or_insert(0.0) += 1.0;
        *cols.entry(y).or_insert(0.0) += 1.0;
    }
    (cells, rows, cols)
}

fn comb2(x: f64) -> f64 {
    x * (x - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions, ≈ 0 for chance.
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as f64;
    let (cells, rows, cols) = contingency(a, b);
    let index: f64 = cells.values().map(|&c| comb2(c)).sum();
    let sa: f64 = rows.values().map(|&c| comb2(c)).sum();
    let sb: f64 = cols.values().map(|&c| comb2(c)).sum();
    let expected = sa * sb / comb2(n);
    let max = 0.5 * (sa + sb);
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Normalized mutual information, I(a; b) / ((H(a) + H(b)) / 2).
pub fn normalized_mutual_info(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len() as f64;
    let (cells, rows, cols) = contingency(a, b);
    let h = |m: &HashMap<u32, f64>| -m.values().map(|&c| (c / n) * (c / n).ln()).sum::<f64>();
    let (ha, hb) = (h(&rows), h(&cols));
    if ha == 0.0 && hb == 0.0 {
        return 1.0;
    }
    let mi: f64 = cells.iter().map(|(&(x, y), &c)| (c / n) * ((c * n) / (rows[&x] * cols[&y])).ln()).sum();
    let denom = 0.5 * (ha + hb);
    if denom <= 0.0 { 0.0 } else { (mi / denom).clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from scikit-learn 1.9.1:
    // adjusted_rand_score / normalized_mutual_info_score([0,0,0,1,1,1,2,2,2,2], [0,0,1,1,1,2,2,2,0,2])
    const A: [u32; 10] = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
    const B: [u32; 10] = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2];

    #[test]
    fn matches_scikit_learn() {
        assert!((adjusted_rand_index(&A, &B) - 0.20454545454545456).abs() < 1e-12, "{}", adjusted_rand_index(&A, &B));
        assert!(
            (normalized_mutual_info(&A, &B) - 0.44270128334605).abs() < 1e-12,
            "{}",
            normalized_mutual_info(&A, &B)
        );
    }

    #[test]
    fn label_permutations_do_not_matter() {
        let c: Vec<u32> = A.iter().map(|&x| (x + 1) % 3).collect();
        assert_eq!(adjusted_rand_index(&A, &c), 1.0);
        assert!((normalized_mutual_info(&A, &c) - 1.0).abs() < 1e-12);
    }
}
