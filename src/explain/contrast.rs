//! Contrast keywords: what the texts of a class say more often than the other texts, beside the
//! decoder's "what the embedding says". For each class k and term w of the vocabulary, the
//! log-odds ratio of w's document frequency inside the class against the rest, with an
//! informative Dirichlet prior, as a z-score (Monroe, Colaresi & Quinn 2008, "Fightin' Words",
//! eq. 22):
//!
//! ```text
//! δ_kw = ln((y_kw + α_w) / (n_k + α₀ − y_kw − α_w)) − ln((y_rw + α_w) / (n_r + α₀ − y_rw − α_w))
//! z_kw = δ_kw / √(1 / (y_kw + α_w) + 1 / (y_rw + α_w))
//! ```
//!
//! y_kw is the class's posterior-weighted number of texts containing w (Σᵢ r_ik [w ∈ textᵢ]),
//! y_rw the rest's, n_k and n_r the sums of those counts over the vocabulary, and the prior
//! α_w = α₀ · y_w / Σ y with α₀ = min(1000, Σ y): the term's share of all texts, so a word
//! common everywhere scores near zero and a rare word needs several texts to score. The
//! keywords of a class are its terms with the highest z above 1.96 (more frequent in the class
//! at the 5% level).

use super::{Keyword, vocab::Vocabulary};

/// Strength of the prior, in term counts (at most the corpus's own).
const PRIOR: f64 = 1000.0;
/// z a keyword must exceed.
const Z_MIN: f64 = 1.96;

/// Per class, up to `top` contrast keywords. `docs` are the vocabulary's documents (the texts of
/// `rows`), `post` the n × `k` posteriors of every row.
pub(super) fn keywords(vocab: &Vocabulary, rows: &[usize], post: &[f64], k: usize, top: usize) -> Vec<Vec<Keyword>> {
    let v = vocab.terms.len();
    let mut out = vec![Vec::new(); k];
    if v == 0 || top == 0 {
        return out;
    }
    // y[c · v + w]: posterior-weighted texts of class c that contain w.
    let mut y = vec![0.0; k * v];
    for (doc, &i) in vocab.docs.iter().zip(rows) {
        let r = &post[i * k..(i + 1) * k];
        for &w in doc {
            for (c, &rc) in r.iter().enumerate() {
                y[c * v + w as usize] += rc;
            }
        }
    }
    let total: Vec<f64> = (0..v).map(|w| (0..k).map(|c| y[c * v + w]).sum()).collect();
    let all: f64 = total.iter().sum();
    if all <= 0.0 {
        return out;
    }
    let a0 = PRIOR.min(all);
    let alpha: Vec<f64> = total.iter().map(|&t| a0 * t / all).collect();
    for (c, kw) in out.iter_mut().enumerate() {
        let yk = &y[c * v..(c + 1) * v];
        let nk: f64 = yk.iter().sum();
        let nr = all - nk;
        let mut scored: Vec<(f64, usize)> = (0..v)
            .filter_map(|w| {
                let (a, ykw) = (alpha[w], yk[w]);
                let yrw = (total[w] - ykw).max(0.0);
                let inside = ((ykw + a) / (nk + a0 - ykw - a)).ln();
                let outside = ((yrw + a) / (nr + a0 - yrw - a)).ln();
                let z = (inside - outside) / (1.0 / (ykw + a) + 1.0 / (yrw + a)).sqrt();
                (z.is_finite() && z > Z_MIN).then_some((z, w))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        *kw = scored.iter().take(top).map(|&(z, w)| Keyword { word: vocab.terms[w].clone(), score: z }).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_frequent_in_a_class_rank_first_and_common_words_never() {
        let mut texts = Vec::new();
        for i in 0..60 {
            texts.push(if i % 2 == 0 { "free gems today deal" } else { "guild raid today friends" });
        }
        let refs: Vec<&str> = texts.to_vec();
        let vocab = Vocabulary::build(&refs, 2, 100);
        let rows: Vec<usize> = (0..60).collect();
        // Class 0 holds the "gems" texts, class 1 the "guild" ones (posteriors 0.9 / 0.1).
        let post: Vec<f64> = (0..60).flat_map(|i| if i % 2 == 0 { [0.9, 0.1] } else { [0.1, 0.9] }).collect();
        let kw = keywords(&vocab, &rows, &post, 2, 10);
        let words = |c: usize| kw[c].iter().map(|k| k.word.as_str()).collect::<Vec<_>>();
        assert!(words(0).contains(&"gems") && words(0).contains(&"free gems"), "{:?}", words(0));
        assert!(words(1).contains(&"guild") && !words(1).contains(&"gems"), "{:?}", words(1));
        // "today" is in every text: no contrast.
        assert!(!words(0).contains(&"today") && !words(1).contains(&"today"));
        assert!(kw[0].windows(2).all(|p| p[0].score >= p[1].score) && kw[0].iter().all(|k| k.score > Z_MIN));
        assert!(keywords(&vocab, &rows, &post, 2, 0).iter().all(Vec::is_empty));
    }
}
