//! Closed sets of named options (a covariance structure, a criterion, a device): the names a
//! configuration file, a command line or a Python keyword gives them, with a line of help each.
//! Front ends build their argument parsers from [`Choice::ALL`]; the library knows no parser.

/// A closed set of named options.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every option, in the order help lists them.
    const ALL: &'static [Self];

    /// The option's name (lowercase, as written on a command line and in `model.json`).
    fn name(self) -> &'static str;

    /// One line saying what the option does.
    fn help(self) -> &'static str;

    /// The option named `s` (case-insensitive).
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Every name, comma-separated (for messages).
    fn names() -> String {
        Self::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
    }
}
