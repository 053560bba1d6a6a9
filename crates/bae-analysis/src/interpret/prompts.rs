//! The judge's prompts (our own wording and examples) and the parsing of its answers.
//!
//! Each prompt ends with the part that changes (the samples, or the one sample to check), so a
//! local judge reuses the computed prefix from one request to the next.

use super::judge::{ChatMessage, Request};
use crate::features::Sample;

/// Tokens a description may take; a verification answer takes a few.
pub const DESCRIBE_MAX_TOKENS: usize = 24;
pub const VERIFY_MAX_TOKENS: usize = 3;
/// Characters kept of a description.
const DESCRIPTION_MAX_CHARS: usize = 100;

const DESCRIBE_SYSTEM: &str = "You name what a feature of a language model responds to. \
You get text snippets; in each, one token is marked like <<this>>. The feature is active on \
every marked token. Answer with one short phrase (at most eight words) naming the linguistic \
pattern the marked tokens share: a word or word piece, a word class, a grammatical role, a topic, \
a kind of name or number. Be specific: never answer with vague phrases such as \"words\", \
\"tokens\", \"text\", \"various things\" or \"language\". Write the phrase only.";

/// Our few-shot examples: (snippets with the marked token, the phrase we want).
const DESCRIBE_SHOTS: [(&[&str], &str); 2] = [
    (
        &[
            "the treaty signed in 18<<65>> ended",
            "since the spring of 19<<12>>, when",
            "a debt that in 17<<89>> stood at",
            "elections of 19<<48>> and",
            "by the end of 20<<03>> we",
        ],
        "last two digits of a year",
    ),
    (
        &[
            "and so we <<must>> act before",
            "the Congress <<should>> pass this",
            "it <<will>> be remembered",
            "no nation <<can>> afford",
            "you <<may>> find that",
        ],
        "modal verb before the main verb",
    ),
];

const VERIFY_SYSTEM: &str = "You check whether a description of a language-model feature fits \
one marked token. You get the description and a text snippet in which one token is marked like \
<<this>>. Answer Yes if the marked token, read in its context, fits the description, and No if \
it does not. Answer with Yes or No only.";

/// (description, snippet, answer)
const VERIFY_SHOTS: [(&str, &str, &str); 3] = [
    (
        "modal verb before the main verb",
        "we <<must>> not forget",
        "Yes",
    ),
    (
        "last two digits of a year",
        "the army of the <<Potomac>> moved",
        "No",
    ),
    (
        "names of months",
        "the first week of <<March>> brought",
        "Yes",
    ),
];

/// A sample as the judge reads it: its context with the token marked.
pub fn snippet(s: &Sample) -> String {
    let c = &s.context;
    format!("{}<<{}>>{}", c.before, c.token, c.after)
        .replace('⏎', " ")
        .trim()
        .to_string()
}

fn numbered(snippets: &[String]) -> String {
    snippets
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_user(snippets: &[String]) -> String {
    format!(
        "Snippets:\n{}\nWhat do the marked tokens have in common?",
        numbered(snippets)
    )
}

/// The description request for the first samples of a feature.
pub fn describe(samples: &[Sample]) -> Request {
    let mut messages = vec![ChatMessage::new("system", DESCRIBE_SYSTEM)];
    for (shots, answer) in DESCRIBE_SHOTS {
        let shots: Vec<String> = shots.iter().map(|s| s.to_string()).collect();
        messages.push(ChatMessage::new("user", describe_user(&shots)));
        messages.push(ChatMessage::new("assistant", answer));
    }
    let snippets: Vec<String> = samples.iter().map(snippet).collect();
    messages.push(ChatMessage::new("user", describe_user(&snippets)));
    Request {
        messages,
        max_tokens: DESCRIBE_MAX_TOKENS,
    }
}

fn verify_user(description: &str, snippet: &str) -> String {
    format!(
        "Description: {description}\nSnippet: {snippet}\nDoes the marked token fit the description?"
    )
}

/// The Yes/No request: does `description` fit the marked token of `sample`?
pub fn verify(description: &str, sample: &Sample) -> Request {
    let mut messages = vec![ChatMessage::new("system", VERIFY_SYSTEM)];
    for (desc, snip, answer) in VERIFY_SHOTS {
        messages.push(ChatMessage::new("user", verify_user(desc, snip)));
        messages.push(ChatMessage::new("assistant", answer));
    }
    messages.push(ChatMessage::new(
        "user",
        verify_user(description, &snippet(sample)),
    ));
    Request {
        messages,
        max_tokens: VERIFY_MAX_TOKENS,
    }
}

/// Words that make a description over-general: an answer made only of them is rejected.
const VAGUE: [&str; 12] = [
    "word",
    "words",
    "token",
    "tokens",
    "text",
    "various",
    "things",
    "language",
    "general",
    "misc",
    "miscellaneous",
    "none",
];

/// The description in a judge's answer: its first non-empty line without list marks, quotes or
/// a final period, at most 100 characters; None when nothing specific is left.
pub fn parse_description(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line
        .trim_start_matches(|c: char| c == '-' || c == '*' || c.is_whitespace())
        .trim_start_matches("Answer:")
        .trim_start_matches("Description:")
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`')
        .trim_end_matches('.')
        .trim();
    let text: String = line.chars().take(DESCRIPTION_MAX_CHARS).collect();
    let specific = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .any(|w| {
            let w = w.to_lowercase();
            !VAGUE.contains(&w.as_str())
                && !["a", "an", "the", "of", "and", "or", "in", "some"].contains(&w.as_str())
        });
    specific.then_some(text)
}

/// Yes / No at the start of an answer (case and punctuation ignored); None when it is neither.
pub fn parse_yes_no(answer: &str) -> Option<bool> {
    let first: String = answer
        .trim()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    match first.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_answers() {
        assert_eq!(parse_yes_no("Yes"), Some(true));
        assert_eq!(parse_yes_no(" yes."), Some(true));
        assert_eq!(parse_yes_no("No, it does not"), Some(false));
        assert_eq!(parse_yes_no("NO"), Some(false));
        assert_eq!(parse_yes_no("Nope"), None);
        assert_eq!(parse_yes_no("Yesterday"), None);
        assert_eq!(parse_yes_no("Maybe"), None);
        assert_eq!(parse_yes_no(""), None);
    }

    #[test]
    fn descriptions_are_cleaned_and_vague_ones_rejected() {
        assert_eq!(
            parse_description("\n  \"Names of months.\"\nmore"),
            Some("Names of months".into())
        );
        assert_eq!(
            parse_description("- Description: past-tense verbs"),
            Some("past-tense verbs".into())
        );
        assert_eq!(parse_description("Words."), None);
        assert_eq!(parse_description("various tokens"), None);
        assert_eq!(parse_description("   \n "), None);
        assert_eq!(
            parse_description(&"x".repeat(300)).map(|s| s.len()),
            Some(100)
        );
    }

    #[test]
    fn prompts_end_with_what_changes() {
        let s = Sample {
            row: 0,
            doc: 0,
            position: 3,
            token_id: 1,
            salience: 1.0,
            strength: 1.0,
            context: crate::features::Context {
                before: "the 5".into(),
                token: "th".into(),
                after: " of⏎May".into(),
            },
        };
        assert_eq!(snippet(&s), "the 5<<th>> of May");
        let a = verify("ordinal suffixes", &s);
        let b = verify(
            "ordinal suffixes",
            &Sample {
                row: 9,
                ..s.clone()
            },
        );
        assert_eq!(a.messages.len(), 8);
        assert_eq!(a.messages[..7], b.messages[..7]);
        assert!(a.messages[7].content.ends_with("fit the description?"));
        assert!(
            a.messages[7]
                .content
                .contains("Description: ordinal suffixes")
        );
        let d = describe(&[s.clone(), s]);
        assert_eq!(d.messages.len(), 6);
        assert!(d.messages[5].content.contains("2. the 5<<th>> of May"));
    }
}
