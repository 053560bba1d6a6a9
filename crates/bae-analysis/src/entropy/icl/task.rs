//! The shipped query → answer lists (`crates/bae-analysis/data/icl/*.tsv`, compiled in).
//!
//! File format: UTF-8, one pair per line, `query<TAB>answer`; lines starting with `#` are
//! comments (the first one names and describes the task), blank lines are skipped.

/// One in-context task: the pairs demonstrations and queries are drawn from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IclTask {
    /// Short name (`word_category`, …), as [`task`] takes it.
    pub name: String,
    /// One line: what maps to what.
    pub description: String,
    /// (query, answer), in file order; queries are unique.
    pub pairs: Vec<(String, String)>,
}

/// (name, description, file text) of every shipped task, the default first.
const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "word_category",
        "a common English noun -> its category (animal, fruit, vegetable, color, vehicle, \
         instrument, sport, clothing, tool, furniture)",
        include_str!("../../../data/icl/word_category.tsv"),
    ),
    (
        "country_capital",
        "a country -> its capital city",
        include_str!("../../../data/icl/country_capital.tsv"),
    ),
    (
        "antonym",
        "an English word -> its opposite",
        include_str!("../../../data/icl/antonym.tsv"),
    ),
];

/// Name of the task `bae entropy --by demonstrations` uses unless told otherwise.
pub const DEFAULT_TASK: &str = "word_category";

/// Every shipped task, [`DEFAULT_TASK`] first.
pub fn builtin_tasks() -> Vec<IclTask> {
    BUILTIN
        .iter()
        .map(|(name, desc, text)| {
            parse_task(name, desc, text).unwrap_or_else(|e| panic!("shipped ICL task {name}: {e}"))
        })
        .collect()
}

/// Names of the shipped tasks, [`DEFAULT_TASK`] first.
pub fn task_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _, _)| *name).collect()
}

/// The shipped task called `name`; the error lists the names there are.
pub fn task(name: &str) -> Result<IclTask, String> {
    let (name, desc, text) = BUILTIN.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        format!(
            "no in-context task named '{name}' (there are: {})",
            task_names().join(", ")
        )
    })?;
    parse_task(name, desc, text)
}

/// Parses a task file (format in the module docs). Errors name the line: a line without exactly
/// one tab, an empty query or answer, text that would break the prompt format (a newline, `:` in
/// a query, leading or trailing spaces), a repeated query, or fewer than two pairs.
pub fn parse_task(name: &str, description: &str, text: &str) -> Result<IclTask, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: &str| format!("{name} line {}: {msg}", i + 1);
        let mut cols = line.split('\t');
        let (Some(q), Some(a), None) = (cols.next(), cols.next(), cols.next()) else {
            return Err(at("expected query<TAB>answer"));
        };
        for (what, s) in [("query", q), ("answer", a)] {
            if s.is_empty() {
                return Err(at(&format!("empty {what}")));
            }
            if s.trim() != s {
                return Err(at(&format!("{what} '{s}' has leading or trailing spaces")));
            }
        }
        if q.contains(':') {
            return Err(at(&format!("query '{q}' contains ':', the separator")));
        }
        if !seen.insert(q.to_string()) {
            return Err(at(&format!("query '{q}' repeated")));
        }
        pairs.push((q.to_string(), a.to_string()));
    }
    if pairs.len() < 2 {
        return Err(format!(
            "{name}: {} pairs, need at least 2 (a query and a demonstration)",
            pairs.len()
        ));
    }
    Ok(IclTask {
        name: name.to_string(),
        description: description.to_string(),
        pairs,
    })
}
