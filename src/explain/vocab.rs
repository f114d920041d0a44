//! The vocabulary of a text column: the words of each text in any language ([`Segmenter`]:
//! lowercase, stop words of the languages detected removed, particles and endings stripped,
//! CJK segmented, never sub-word token pieces), unigrams and the bigrams of adjacent kept words,
//! and a minimum document frequency.

use std::collections::HashMap;

use super::lang::Segmenter;

/// The kept words of one text on its own (see [`Segmenter`]; a column's words come from one
/// segmenter built over the whole column).
pub fn words(text: &str) -> Vec<String> {
    Segmenter::for_texts(&[text]).words(text)
}

/// Unigrams and bigrams ("free gems") of a text's words, each once.
pub fn terms(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = words.to_vec();
    out.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out.sort();
    out.dedup();
    out
}

/// Terms kept for the decoder and, per document, which of them it contains.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    /// Kept terms, most frequent first.
    pub terms: Vec<String>,
    /// Number of documents containing each term.
    pub df: Vec<usize>,
    /// For each document, the indices of the kept terms it contains (sorted).
    pub docs: Vec<Vec<u32>>,
}

impl Vocabulary {
    /// Builds the vocabulary of `texts`: terms in at least `min_df` documents, the `max_terms`
    /// most frequent of them (ties broken alphabetically, so the result is deterministic).
    pub fn build(texts: &[&str], min_df: usize, max_terms: usize) -> Self {
        let seg = Segmenter::for_texts(texts);
        let per_doc: Vec<Vec<String>> = texts.iter().map(|t| terms(&seg.words(t))).collect();
        let mut df: HashMap<&str, usize> = HashMap::new();
        for d in &per_doc {
            for t in d {
                *df.entry(t.as_str()).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(&str, usize)> = df.into_iter().filter(|&(_, c)| c >= min_df.max(1)).collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        kept.truncate(max_terms);
        let index: HashMap<&str, u32> = kept.iter().enumerate().map(|(i, (t, _))| (*t, i as u32)).collect();
        let docs = per_doc
            .iter()
            .map(|d| {
                let mut ids: Vec<u32> = d.iter().filter_map(|t| index.get(t.as_str()).copied()).collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        Vocabulary {
            terms: kept.iter().map(|(t, _)| t.to_string()).collect(),
            df: kept.iter().map(|&(_, c)| c).collect(),
            docs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_words_never_pieces() {
        assert_eq!(words("Claim 500 FREE gems today!"), ["claim", "free", "gems", "today"]);
        assert_eq!(terms(&words("free gems")), ["free", "free gems", "gems"]);
        assert!(words("!!! 123 ...").is_empty());
    }

    #[test]
    fn min_df_and_order() {
        let v = Vocabulary::build(&["free gems now", "free gems", "guild friends", "free"], 2, 10);
        assert_eq!(v.terms, ["free", "free gems", "gems"]);
        assert_eq!(v.df, [3, 2, 2]);
        assert_eq!(v.docs[0], [0, 1, 2]);
        assert!(v.docs[2].is_empty());
    }
}
