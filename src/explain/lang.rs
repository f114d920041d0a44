//! Words of any language, for keywords: what a reader of the language would call a word, never
//! a sub-word piece, a word with its grammar attached, a function word, a URL or a number.
//!
//! * **Noise.** Whitespace-separated tokens that are URLs (`://`, `http:`/`https:` however cut
//!   short, `www.`, `t.co/…`, a bare domain such as `t.co` or `bit.ly`), e-mail addresses or
//!   @handles are dropped before segmentation; a hashtag keeps its word (`#sale` is `sale`);
//!   words without a letter (numbers, punctuation) never become keywords.
//! * **Alphabetic scripts** (Latin, Cyrillic, Greek, …): Unicode word segmentation (UAX #29),
//!   lowercased.
//! * **Korean**: space-delimited eojeols are split into a content word and its grammar. A
//!   particle (josa: 를, 의, 에서, 으로…) is stripped when the stem is attested on its own in
//!   the column (standing alone, or with two different particles), so 길드를 and 길드와 become
//!   길드 but 효과 (where 과 is part of the word) stays whole. Without that evidence, a particle
//!   comes off a stem of two or more syllables when it has two syllables itself or fits the
//!   stem's last sound (가 after a vowel, 을 after a consonant: 스튜디오가 → 스튜디오, but
//!   전문가 stays). Sino-Korean verbs (도전하세요,
//!   지급됩니다) keep their noun (도전, 지급), the plural suffix 들 comes off nouns (친구들과 →
//!   친구), 적인 keeps its adjectival noun (압도적인 → 압도적); other predicates (받으세요,
//!   드립니다) and unattested words ending in the adnominal 는 (펼쳐지는) are grammar
//!   around a verb stem and are dropped. This is the left-right (L + R) eojeol model of
//!   unsupervised Korean tokenizers (soynlp's LTokenizer) with closed lists of particles and
//!   endings, in place of a dictionary morphological analyser: none builds without a
//!   downloaded dictionary.
//! * **Chinese**: jieba's dictionary segmentation and part-of-speech tags (its dictionary is
//!   compiled into the crate); nouns, verbs, adjectives and foreign words are kept.
//! * **Japanese** (any text with kana): runs of kanji and runs of katakana are words; hiragana,
//!   which carries particles, auxiliaries and inflections, is dropped (character-type
//!   segmentation).
//! * **Stop words**: English always; Spanish, French, German, Portuguese and Italian for each
//!   language detected in the column (a text is in a language when at least two of its words
//!   are that language's stop words and no other language, English included, has more; a
//!   language is detected when at least 5% of the texts are in it), and in every text that is
//!   itself in one of them (so the few Spanish tweets of an English column lose their "la", "y",
//!   "que"); the Korean, Japanese and Chinese lists wherever their script appears.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use unicode_segmentation::UnicodeSegmentation;

/// Languages whose stop words are switched on by detection, with their lists.
const DETECTED: &[(&str, &str)] = &[
    ("es", include_str!("stopwords/es.txt")),
    ("fr", include_str!("stopwords/fr.txt")),
    ("de", include_str!("stopwords/de.txt")),
    ("pt", include_str!("stopwords/pt.txt")),
    ("it", include_str!("stopwords/it.txt")),
];
const EN: &str = include_str!("stopwords/en.txt");
const KO: &str = include_str!("stopwords/ko.txt");
const JA: &str = include_str!("stopwords/ja.txt");
const ZH: &str = include_str!("stopwords/zh.txt");
/// Share of texts in a language that switches its stop words on.
const DETECT_SHARE: f64 = 0.05;

/// Korean particles (josa), longest first so that 에서는 is tried before 는.
const JOSA: &[&str] = &[
    "에서부터",
    "으로부터",
    "에게서는",
    "이라고는",
    "에게서",
    "한테서",
    "이라고",
    "이라는",
    "이라면",
    "에서는",
    "에서도",
    "에게는",
    "에게도",
    "으로는",
    "으로도",
    "까지는",
    "까지도",
    "부터는",
    "이든지",
    "에서",
    "에게",
    "한테",
    "께서",
    "으로",
    "까지",
    "부터",
    "처럼",
    "보다",
    "마다",
    "이나",
    "이랑",
    "에는",
    "에도",
    "과의",
    "와의",
    "이며",
    "이고",
    "만큼",
    "밖에",
    "조차",
    "마저",
    "이라",
    "로는",
    "로도",
    "와는",
    "과는",
    "을",
    "를",
    "이",
    "가",
    "은",
    "는",
    "의",
    "에",
    "와",
    "과",
    "도",
    "만",
    "로",
];
/// Endings of Sino-Korean verbs (noun + 하다 / 되다): what precedes them is the noun.
const HADA: &[&str] = &[
    "하시나요",
    "했습니다",
    "됐습니다",
    "하였다",
    "하세요",
    "합니다",
    "됩니다",
    "했어요",
    "하시면",
    "하십시오",
    "해보세요",
    "하면",
    "하고",
    "해서",
    "하는",
    "하게",
    "하기",
    "해요",
    "했다",
    "한다",
    "하며",
    "하여",
    "되는",
    "되어",
    "된다",
    "되면",
    "되고",
    "돼요",
    "할",
    "한",
    "된",
];
/// Endings that make an eojeol a predicate (a verb or adjective with its grammar).
const PREDICATE: &[&str] = &[
    "습니다",
    "십시오",
    "세요",
    "니다",
    "어요",
    "아요",
    "여요",
    "나요",
    "네요",
    "었다",
    "았다",
    "는다",
    "어라",
    "아라",
    "시오",
    "죠",
    "요",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Han,
    Hiragana,
    Katakana,
    Hangul,
    Other,
}

fn script(c: char) -> Script {
    match c as u32 {
        0x3040..=0x309F => Script::Hiragana,
        0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Katakana,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => Script::Han,
        0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F => Script::Hangul,
        _ => Script::Other,
    }
}

fn is_cjk(c: char) -> bool {
    matches!(script(c), Script::Han | Script::Hiragana | Script::Katakana)
}

fn list(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Whether a whitespace-separated token is a URL, an e-mail address or an @handle.
fn is_noise(token: &str) -> bool {
    let t = token.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '/');
    let lower = t.to_ascii_lowercase();
    if t.starts_with('@') || t.contains("://") || lower.starts_with("www.") {
        return true;
    }
    // A URL cut short ("https:/…", "http:", "https…" at the end of a truncated tweet).
    let raw = token.trim_start_matches(|c: char| !c.is_alphanumeric()).to_ascii_lowercase();
    if raw.starts_with("http:") || raw.starts_with("https:") || lower == "http" || lower == "https" {
        return true;
    }
    if let Some(at) = t.find('@') {
        return at > 0 && t[at..].contains('.');
    }
    // A domain, with or without a path: t.co/abc, example.com/page, bit.ly.
    let host = t.split_once('/').map_or(t, |(host, _)| host);
    let parts: Vec<&str> = host.split('.').collect();
    let tld = parts.last().copied().unwrap_or_default();
    parts.len() >= 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && (t.contains('/') || (2..=6).contains(&tld.len()) && tld.chars().all(|c| c.is_ascii_lowercase()))
}

/// The language (index into `lists`) a text's lowercased words are in: at least two of them are
/// its stop words, and neither English nor another list has as many (the first list on ties).
fn language_of(words: &[String], en: &HashSet<&str>, lists: &[(&str, HashSet<&str>)]) -> Option<usize> {
    let hits = |set: &HashSet<&str>| words.iter().filter(|w| set.contains(w.as_str())).count();
    let en_hits = hits(en);
    let (h, i) =
        lists.iter().enumerate().map(|(i, (_, set))| (hits(set), i)).max_by_key(|&(h, i)| (h, usize::MAX - i))?;
    (h >= 2 && h > en_hits).then_some(i)
}

/// jieba with its built-in dictionary, loaded on first use.
fn jieba() -> &'static jieba_rs::Jieba {
    static J: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    J.get_or_init(jieba_rs::Jieba::new)
}

/// Splits texts into words (see the module documentation); built once per column.
#[derive(Debug, Clone)]
pub struct Segmenter {
    stop: HashSet<&'static str>,
    languages: Vec<&'static str>,
    /// English's list and the detected languages' lists, for each text's own language.
    en: HashSet<&'static str>,
    lists: Vec<(&'static str, HashSet<&'static str>)>,
    /// Korean stems attested on their own in the column.
    stems: HashSet<String>,
}

impl Segmenter {
    /// The segmenter for a column: detects its languages and learns its Korean stems.
    pub fn for_texts(texts: &[&str]) -> Segmenter {
        let en: HashSet<&str> = list(EN).collect();
        let mut stop: HashSet<&'static str> =
            en.iter().copied().chain(list(KO)).chain(list(JA)).chain(list(ZH)).collect();
        let lists: Vec<(&'static str, HashSet<&'static str>)> =
            DETECTED.iter().map(|(l, t)| (*l, list(t).collect())).collect();
        let mut votes = vec![0usize; lists.len()];
        let mut alone: HashSet<String> = HashSet::new();
        let mut josas: HashMap<String, HashSet<&str>> = HashMap::new();
        for text in texts {
            let words: Vec<String> = text.unicode_words().map(str::to_lowercase).collect();
            if let Some(i) = language_of(&words, &en, &lists) {
                votes[i] += 1;
            }
            for w in words.iter().filter(|w| w.chars().any(|c| script(c) == Script::Hangul)) {
                alone.insert(w.clone());
                for j in JOSA {
                    if let Some(stem) = w.strip_suffix(j).filter(|s| !s.is_empty()) {
                        josas.entry(stem.to_string()).or_default().insert(j);
                    }
                }
            }
        }
        let mut languages = vec!["en"];
        for (i, (lang, set)) in lists.iter().enumerate() {
            if votes[i] > 0 && votes[i] as f64 >= DETECT_SHARE * texts.len() as f64 {
                languages.push(lang);
                stop.extend(set.iter().copied());
            }
        }
        let mut stems = alone;
        stems.extend(josas.into_iter().filter(|(_, j)| j.len() >= 2).map(|(s, _)| s));
        Segmenter { stop, languages, en, lists, stems }
    }

    /// The languages whose stop words are removed (English, then those detected).
    pub fn languages(&self) -> &[&'static str] {
        &self.languages
    }

    /// The words of one text, in order (lowercased; stop words, URLs, handles and numbers
    /// removed; CJK segmented).
    pub fn words(&self, text: &str) -> Vec<String> {
        let clean: Vec<&str> = text.split_whitespace().filter(|t| !is_noise(t)).collect();
        let clean = clean.join(" ");
        let japanese = clean.chars().any(|c| matches!(script(c), Script::Hiragana | Script::Katakana));
        let mut out = Vec::new();
        // Alternate runs of CJK (Han, kana) and everything else.
        let mut rest = clean.as_str();
        while !rest.is_empty() {
            let cjk = rest.chars().next().is_some_and(is_cjk);
            let end = rest.char_indices().find(|&(_, c)| is_cjk(c) != cjk).map_or(rest.len(), |(i, _)| i);
            let (run, tail) = rest.split_at(end);
            rest = tail;
            if !cjk {
                for w in run.unicode_words() {
                    let w = w.to_lowercase();
                    let w = if w.chars().any(|c| script(c) == Script::Hangul) { self.korean(&w) } else { Some(w) };
                    out.extend(w);
                }
            } else if japanese {
                out.extend(script_runs(run));
            } else {
                out.extend(chinese(run));
            }
        }
        // The text's own language's stop words, when the column's detection left them on.
        let own = language_of(&text.unicode_words().map(str::to_lowercase).collect::<Vec<_>>(), &self.en, &self.lists)
            .map(|i| &self.lists[i])
            .filter(|(lang, _)| !self.languages.contains(lang));
        out.retain(|w| {
            w.chars().any(char::is_alphabetic)
                && !self.stop.contains(w.as_str())
                && !own.is_some_and(|(_, set)| set.contains(w.as_str()))
        });
        out
    }

    /// The content word of a Korean eojeol, or `None` for a predicate.
    fn korean(&self, w: &str) -> Option<String> {
        // A stop word is one before its particle could be mistaken for one (그대로 is not 그대 + 로).
        if self.stop.contains(w) {
            return None;
        }
        let syllables = |s: &str| s.chars().count();
        for e in HADA {
            if let Some(stem) = w.strip_suffix(e)
                && syllables(stem) >= 2
            {
                return Some(stem.to_string());
            }
        }
        if (PREDICATE.iter().any(|e| w.ends_with(e)) && syllables(w) >= 3) || past_tense(w) {
            return None;
        }
        for j in JOSA {
            if let Some(stem) = w.strip_suffix(j).filter(|s| !s.is_empty()) {
                // The plural suffix 들 before a particle marks the stem as a noun.
                if let Some(noun) = stem.strip_suffix('들').filter(|n| syllables(n) >= 2) {
                    return Some(noun.to_string());
                }
                let long = syllables(stem) >= 2;
                if self.stems.contains(stem) || (long && (syllables(j) >= 2 || fits_stem(j, stem))) {
                    return Some(stem.to_string());
                }
            }
        }
        // 압도적인 is the adjectival noun 압도적 with the copula's adnominal ending.
        if let Some(noun) = w.strip_suffix("적인") {
            return Some(format!("{noun}적"));
        }
        // An unattested word ending in 는 is a verb's adnominal form (펼쳐지는), not a noun with
        // its topic particle (an attested noun lost its 는 above).
        if w.ends_with('는') && syllables(w) >= 3 {
            return None;
        }
        Some(w.strip_suffix('들').filter(|n| syllables(n) >= 2).unwrap_or(w).to_string())
    }
}

/// Whether one-syllable particle `j` may follow `stem` without other evidence: Korean particles
/// alternate with the stem's last sound (가, 를, 와 after a vowel; 을, 과 after a consonant; 로
/// after a vowel or ㄹ; 의, 에, 도 after either), so 스튜디오가 is 스튜디오 + 가 while 전문가
/// (a consonant before 가) is one word. 이, 은 and 는 need the stem attested: 고양이 and
/// 펼쳐지는 end like particles but are words.
fn fits_stem(j: &str, stem: &str) -> bool {
    let Some(last) = stem.chars().last().filter(|c| (0xAC00..=0xD7A3).contains(&(*c as u32))) else {
        return false;
    };
    let coda = (last as u32 - 0xAC00) % 28; // 0: ends in a vowel; 8: ㄹ
    match j {
        "가" | "를" | "와" => coda == 0,
        "을" | "과" => coda != 0,
        "로" => coda == 0 || coda == 8,
        "의" | "에" | "도" => true,
        _ => false,
    }
}

/// A Korean past-tense predicate: 다 after a syllable whose final consonant is ㅆ (돌아왔다,
/// 했다, 되었다).
fn past_tense(w: &str) -> bool {
    let mut it = w.chars().rev();
    match (it.next(), it.next()) {
        (Some('다'), Some(c)) => (0xAC00..=0xD7A3).contains(&(c as u32)) && (c as u32 - 0xAC00) % 28 == 20,
        _ => false,
    }
}

/// Japanese: maximal runs of kanji and of katakana (with the prolonged sound mark); hiragana
/// is dropped.
fn script_runs(run: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_script = Script::Other;
    for c in run.chars() {
        let s = if c == 'ー' { Script::Katakana } else { script(c) };
        if s != cur_script && !cur.is_empty() {
            if cur_script != Script::Hiragana {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
        cur_script = s;
        cur.push(c);
    }
    if !cur.is_empty() && cur_script != Script::Hiragana {
        out.push(cur);
    }
    out
}

/// Chinese: jieba's words tagged as nouns, verbs, adjectives or English.
fn chinese(run: &str) -> Vec<String> {
    jieba()
        .tag(run, true)
        .into_iter()
        .filter(|t| t.tag == "eng" || matches!(t.tag.chars().next(), Some('n' | 'v' | 'a')))
        .map(|t| t.word.to_string())
        .filter(|w| w.chars().any(|c| c.is_alphabetic()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(column: &[&str], i: usize) -> Vec<String> {
        Segmenter::for_texts(column).words(column[i])
    }

    #[test]
    fn korean_particles_and_endings_come_off() {
        let column = [
            "지금 접속하면 전설 장비 100% 무료 지급!",
            "전설 장비를 무료로 드립니다.",
            "길드와 함께 추억을 나누세요.",
            "추억의 길드를 다시 세우세요.",
            "쿠폰 입력하고 보상을 받으세요. 보상이 지급됩니다.",
            "효과 좋은 물약",
        ];
        assert_eq!(words_of(&column, 1), ["전설", "장비", "무료"]);
        assert_eq!(words_of(&column, 2), ["길드", "추억"]);
        assert_eq!(words_of(&["옛 친구들과 유저들이 돌아왔다"], 0), ["옛", "친구", "유저"]);
        assert_eq!(words_of(&["그때 그대로 돌아왔다"], 0), ["그때"]);
        assert_eq!(words_of(&["펼쳐지는 압도적인 그래픽"], 0), ["압도적", "그래픽"]);
        assert_eq!(words_of(&column, 3), ["추억", "길드", "다시"]);
        assert_eq!(words_of(&column, 4), ["쿠폰", "입력", "보상", "보상", "지급"]);
        // 과 is part of 효과: the stem 효 is never attested alone.
        assert!(words_of(&column, 5).contains(&"효과".to_string()));
        // A particle that fits its stem's last sound comes off unattested; one that does not
        // fit is part of the word.
        assert_eq!(
            words_of(&["AAA 스튜디오가 만든 걸작을 전문가와 함께"], 0),
            ["aaa", "스튜디오", "만든", "걸작", "전문가"]
        );
    }

    #[test]
    fn japanese_and_chinese_are_segmented_into_words() {
        assert_eq!(words_of(&["今すぐ無料ジェムをゲット"], 0), ["無料", "ジェム", "ゲット"]);
        let zh = words_of(&["每天登录就送免费钻石"], 0);
        assert!(zh.contains(&"免费".to_string()) && zh.contains(&"钻石".to_string()), "{zh:?}");
        assert!(!zh.iter().any(|w| w == "就"), "{zh:?}");
    }

    #[test]
    fn urls_handles_and_numbers_never_become_words() {
        let w = words_of(&["@gamer check https://t.co/xYz1 www.example.com t.co/abc 500 gems mail me@x.org"], 0);
        assert_eq!(w, ["check", "gems", "mail"]);
        // Truncated and bare URLs, hashtags, e.g.
        let w = words_of(&["#Vote now https:/… t.co bit.ly https… http e.g. 2016 #trump2016 RT: 10%"], 0);
        assert_eq!(w, ["vote", "e.g", "trump2016", "rt"]);
    }

    #[test]
    fn a_text_in_another_language_loses_its_own_stop_words() {
        let column = [
            "Vote for the future of our country today",
            "Make your voice heard this November",
            "la mejor opción para el futuro y que no se olvide",
            "Register to vote before the deadline",
        ];
        let s = Segmenter::for_texts(&column);
        assert_eq!(s.languages(), ["en", "es"], "one text in four is Spanish (over 5%)");
        let many: Vec<&str> =
            column.iter().copied().cycle().take(4).chain(std::iter::repeat_n(column[0], 40)).collect();
        let s = Segmenter::for_texts(&many);
        assert_eq!(s.languages(), ["en"], "one text in 44 is under 5%");
        assert_eq!(s.words(column[2]), ["mejor", "opción", "futuro", "olvide"]);
    }

    #[test]
    fn stop_words_follow_the_languages_detected() {
        let spanish = ["la mejor oferta y que no se acaba", "el juego de la semana", "gemas gratis para todos"];
        let s = Segmenter::for_texts(&spanish);
        assert_eq!(s.languages(), ["en", "es"]);
        assert_eq!(s.words(spanish[0]), ["mejor", "oferta", "acaba"]);
        // In an English column, Spanish words are words.
        let english = ["free gems for the whole team", "the best deal of the week", "la casa de papel is here"];
        let e = Segmenter::for_texts(&english);
        assert_eq!(e.languages(), ["en"]);
        assert_eq!(e.words(english[2]), ["la", "casa", "papel"]);
    }
}
