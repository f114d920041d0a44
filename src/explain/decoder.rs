//! Keywords from a linear decoder: a Lasso from the reduced embedding to the bag of words
//! ([`super::lasso`]); the keywords of class k are the words whose predicted presence rises most
//! from the population mean to the class mean, score_kv = (μ_k − x̄)ᵀ W_v, in standard deviations
//! of the word's presence. λ is given or chosen on a seeded 80/20 split.

use super::{DecoderInfo, ExplainOptions, Fitted, Keyword, TextSpace, lasso, vocab::Vocabulary};
use crate::foundation::rng::Rng;

/// Per class, its keywords, and what the decoder was fitted with (`None` when no term reaches
/// `min_df`). `vocab` holds the texts of `t.rows`.
pub(super) fn keywords(
    fit: &Fitted,
    t: &TextSpace,
    vocab: &Vocabulary,
    opts: &ExplainOptions,
) -> (Vec<Vec<Keyword>>, Option<DecoderInfo>) {
    let params = &fit.model.params;
    let (p, k, d) = (fit.data.p, params.k, t.d);
    let mut keywords = vec![Vec::new(); k];
    let mut decoder = None;
    if !vocab.terms.is_empty() {
        let m = t.rows.len();
        let x: Vec<f64> = t.rows.iter().flat_map(|&i| t.xt[i * d..(i + 1) * d].iter().copied()).collect();
        let v = vocab.terms.len();
        let mean: Vec<f64> = vocab.df.iter().map(|&c| c as f64 / m as f64).collect();
        let sd: Vec<f64> = mean.iter().map(|&q| (q * (1.0 - q)).sqrt().max(1e-12)).collect();
        let (lambda, choice) = match opts.lambda {
            Some(l) => (l, "given (--lambda)".to_string()),
            None => choose_lambda(&x, d, &vocab.docs, &mean, &sd, opts.seed),
        };
        let all: Vec<usize> = (0..m).collect();
        let (g, c) = lasso::gram_stats(&x, d, &vocab.docs, &all, &mean, &sd);
        let mut w = vec![0.0; d * v];
        lasso::lasso_gram(&g, &c, d, v, lambda, &mut w, 1e-6, 1000);
        let xbar: Vec<f64> = (0..d).map(|a| (0..m).map(|i| x[i * d + a]).sum::<f64>() / m as f64).collect();
        for (kk, kw) in keywords.iter_mut().enumerate() {
            let delta: Vec<f64> = (0..d).map(|a| params.means[kk * p + a] - xbar[a]).collect();
            let mut scores: Vec<(f64, usize)> = (0..v)
                .map(|t| ((0..d).map(|a| delta[a] * w[a * v + t]).sum::<f64>(), t))
                .filter(|s| s.0 > 0.0)
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            *kw = scores
                .iter()
                .take(opts.keywords)
                .map(|&(s, t)| Keyword { word: vocab.terms[t].clone(), score: s })
                .collect();
        }
        decoder = Some(DecoderInfo {
            terms: v,
            min_df: opts.min_df,
            lambda,
            lambda_choice: choice,
            nonzero: w.iter().filter(|x| **x != 0.0).count(),
        });
    }
    (keywords, decoder)
}

/// λ on a seeded 80/20 split: the path λ_max · {1, ½, ⅕, …, 1/1000} (λ_max zeroes every
/// weight) is fitted on 80% of the texts with warm starts, and the λ with the lowest held-out
/// error per (text, word) wins.
fn choose_lambda(x: &[f64], d: usize, docs: &[Vec<u32>], mean: &[f64], sd: &[f64], seed: u64) -> (f64, String) {
    let m = docs.len();
    let v = mean.len();
    let mut idx: Vec<usize> = (0..m).collect();
    let mut rng = Rng::new(seed ^ 0x1a550);
    for t in (1..m).rev() {
        idx.swap(t, rng.below(t + 1));
    }
    let cut = (m * 4 / 5).max(1).min(m.saturating_sub(1)).max(1);
    let (train, val) = idx.split_at(cut);
    let (g, c) = lasso::gram_stats(x, d, docs, train, mean, sd);
    let lambda_max = c.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    if val.is_empty() || lambda_max == 0.0 {
        return (lambda_max.max(1e-3) * 0.1, "λ_max / 10 (too few texts to validate)".into());
    }
    let (gv, cv) = lasso::gram_stats(x, d, docs, val, mean, sd);
    // Σ over validation rows of ỹ², divided by their count.
    let mut yy = 0.0;
    let mut present = vec![0usize; v];
    for &i in val {
        for &t in &docs[i] {
            present[t as usize] += 1;
        }
    }
    for t in 0..v {
        let ones = present[t] as f64;
        let zeros = val.len() as f64 - ones;
        yy += ones * ((1.0 - mean[t]) / sd[t]).powi(2) + zeros * (mean[t] / sd[t]).powi(2);
    }
    yy /= val.len() as f64;
    let mut w = vec![0.0; d * v];
    let mut best = (f64::INFINITY, lambda_max);
    for f in [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001] {
        let lambda = lambda_max * f;
        lasso::lasso_gram(&g, &c, d, v, lambda, &mut w, 1e-6, 500);
        let err = lasso::heldout_mse(&gv, &cv, yy, d, v, &w);
        if err < best.0 {
            best = (err, lambda);
        }
    }
    (best.1, format!("lowest held-out error on a seeded 80/20 split of {m} texts (λ_max = {lambda_max:.4})"))
}
