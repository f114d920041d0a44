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

    /// Campaign tweets as they come from the API: links (whole, cut short, bare), handles,
    /// hashtags, numbers, retweet marks, and a few in Spanish in an English column.
    const TWEETS: &[&str] = &[
        "RT @CNN: Polls open in 3 hours. Find your polling place https://t.co/Ab12Cd34 #Election2016",
        "Make America great again! #Trump2016 https://t.co/xYz https…",
        "I'm with her. Join us tonight at 8pm ET: https://t.co/k9 @HillaryClinton #ImWithHer",
        "Watch the full debate here → bit.ly/debate2016 #debatenight",
        "Donate $5 now: https:/… #FeelTheBern",
        "¡Vota! La elección es el 8 de noviembre y que no se te olvide https://t.co/abc #VotaYa",
        "Nuestra comunidad merece un presidente que la escuche y que la respete",
        "Thank you Ohio!!! 2016 https://t.co/QwErTy http://www.donaldjtrump.com/",
        "Contact us at press@campaign.org or call 555-0100 t.co",
        "Early voting starts TODAY in Florida. #VoteEarly https://t.co/Zz9 via @nytimes",
    ];

    #[test]
    fn tweets_give_no_url_handle_number_or_foreign_stop_word_terms() {
        let v = Vocabulary::build(TWEETS, 1, 10_000);
        assert!(v.terms.contains(&"polling place".to_string()) && v.terms.contains(&"trump2016".to_string()));
        for t in &v.terms {
            for w in t.split(' ') {
                assert!(w.chars().any(char::is_alphabetic), "{t:?} has a word without a letter");
                assert!(!w.contains('#') && !w.contains('@') && !w.contains('/'), "{t:?}");
                assert!(!["https", "http", "t.co", "bit.ly", "co", "www", "com"].contains(&w), "{t:?} is a URL piece");
                assert!(!["la", "y", "que", "el", "de", "es", "se", "un", "no"].contains(&w), "{t:?} is a stop word");
            }
        }
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
