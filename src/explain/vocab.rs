//! The vocabulary of a text column: Unicode word segmentation (UAX #29), lowercase, English stop
//! words removed, unigrams and the bigrams of adjacent kept words, and a minimum document
//! frequency. Works on any script: Korean words are space-delimited, and Chinese or Japanese runs
//! come out as the segmenter's word units, never as sub-word token pieces.

use std::collections::HashMap;

use unicode_segmentation::UnicodeSegmentation;

/// English stop words (scikit-learn's list, minus nothing): removed before n-grams are formed.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "across",
    "after",
    "afterwards",
    "again",
    "against",
    "all",
    "almost",
    "alone",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "amongst",
    "amoungst",
    "amount",
    "an",
    "and",
    "another",
    "any",
    "anyhow",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "around",
    "as",
    "at",
    "back",
    "be",
    "became",
    "because",
    "become",
    "becomes",
    "becoming",
    "been",
    "before",
    "beforehand",
    "behind",
    "being",
    "below",
    "beside",
    "besides",
    "between",
    "beyond",
    "bill",
    "both",
    "bottom",
    "but",
    "by",
    "call",
    "can",
    "cannot",
    "cant",
    "co",
    "con",
    "could",
    "couldnt",
    "cry",
    "de",
    "describe",
    "detail",
    "do",
    "done",
    "down",
    "due",
    "during",
    "each",
    "eg",
    "eight",
    "either",
    "eleven",
    "else",
    "elsewhere",
    "empty",
    "enough",
    "etc",
    "even",
    "ever",
    "every",
    "everyone",
    "everything",
    "everywhere",
    "except",
    "few",
    "fifteen",
    "fifty",
    "fill",
    "find",
    "fire",
    "first",
    "five",
    "for",
    "former",
    "formerly",
    "forty",
    "found",
    "four",
    "from",
    "front",
    "full",
    "further",
    "get",
    "give",
    "go",
    "had",
    "has",
    "hasnt",
    "have",
    "he",
    "hence",
    "her",
    "here",
    "hereafter",
    "hereby",
    "herein",
    "hereupon",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "hundred",
    "i",
    "ie",
    "if",
    "in",
    "inc",
    "indeed",
    "interest",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "keep",
    "last",
    "latter",
    "latterly",
    "least",
    "less",
    "ltd",
    "made",
    "many",
    "may",
    "me",
    "meanwhile",
    "might",
    "mill",
    "mine",
    "more",
    "moreover",
    "most",
    "mostly",
    "move",
    "much",
    "must",
    "my",
    "myself",
    "name",
    "namely",
    "neither",
    "never",
    "nevertheless",
    "next",
    "nine",
    "no",
    "nobody",
    "none",
    "noone",
    "nor",
    "not",
    "nothing",
    "now",
    "nowhere",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "part",
    "per",
    "perhaps",
    "please",
    "put",
    "rather",
    "re",
    "same",
    "see",
    "seem",
    "seemed",
    "seeming",
    "seems",
    "serious",
    "several",
    "she",
    "should",
    "show",
    "side",
    "since",
    "sincere",
    "six",
    "sixty",
    "so",
    "some",
    "somehow",
    "someone",
    "something",
    "sometime",
    "sometimes",
    "somewhere",
    "still",
    "such",
    "system",
    "take",
    "ten",
    "than",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "thence",
    "there",
    "thereafter",
    "thereby",
    "therefore",
    "therein",
    "thereupon",
    "these",
    "they",
    "thick",
    "thin",
    "third",
    "this",
    "those",
    "though",
    "three",
    "through",
    "throughout",
    "thru",
    "thus",
    "to",
    "together",
    "too",
    "top",
    "toward",
    "towards",
    "twelve",
    "twenty",
    "two",
    "un",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "whatever",
    "when",
    "whence",
    "whenever",
    "where",
    "whereafter",
    "whereas",
    "whereby",
    "wherein",
    "whereupon",
    "wherever",
    "whether",
    "which",
    "while",
    "whither",
    "who",
    "whoever",
    "whole",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The kept words of one text, in order: lowercased UAX #29 words that are not stop words and
/// contain a letter (pure numbers and punctuation are dropped).
pub fn words(text: &str) -> Vec<String> {
    text.unicode_words()
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().any(char::is_alphabetic) && STOP_WORDS.binary_search(&w.as_str()).is_err())
        .collect()
}

/// Unigrams and bigrams ("free gems") of one text, each once.
pub fn terms(text: &str) -> Vec<String> {
    let w = words(text);
    let mut out: Vec<String> = w.clone();
    out.extend(w.windows(2).map(|p| format!("{} {}", p[0], p[1])));
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
        let per_doc: Vec<Vec<String>> = texts.iter().map(|t| terms(t)).collect();
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
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn words_are_lowercase_words_never_pieces() {
        assert_eq!(words("Claim 500 FREE gems today!"), ["claim", "free", "gems", "today"]);
        assert_eq!(terms("free gems"), ["free", "free gems", "gems"]);
        // Korean is space-delimited; CJK runs come out whole or per ideograph, never empty.
        assert_eq!(words("무료 보석을 받으세요"), ["무료", "보석을", "받으세요"]);
        assert!(!words("今すぐ無料ジェムをゲット").is_empty());
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
