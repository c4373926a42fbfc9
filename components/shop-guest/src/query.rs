//! A list's query parameters, each read within its bounds: whatever a client puts in a query
//! string is answered with a 400 naming the parameter, or becomes a value small enough that
//! no statement built from it can hit a database limit (SQLite's expression depth, its number
//! of `ORDER BY` terms).

use std::collections::HashSet;

use crate::error::{ApiError, FieldErrors};
use crate::request::Query;

/// How a parameter that holds a list (search words, ordering keys) is split and bounded.
#[derive(Debug, Clone, Copy)]
pub struct TermRules {
    /// At most this many characters in the value, as sent.
    pub max_chars: usize,
    /// At most this many terms, as given (blank pieces between separators are not terms).
    pub max_terms: usize,
    /// What a term is called in the message ("terms", "keys").
    pub noun: &'static str,
    /// Whether a character separates terms.
    pub separator: fn(char) -> bool,
}

/// DRF's message for a value longer than its field allows.
pub fn too_many_chars(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// Reads a list's query parameters one by one, collecting every parameter's messages, so that
/// the client learns about all of its mistakes in one 400 (as [`crate::json::Fields`] does for
/// a body).
#[derive(Debug)]
pub struct ListParams<'q> {
    query: &'q Query,
    errors: FieldErrors,
}

impl<'q> ListParams<'q> {
    /// Starts reading `query`.
    pub fn new(query: &'q Query) -> Self {
        Self {
            query,
            errors: FieldErrors::new(),
        }
    }

    /// The value of `name` if it has at most `max_chars` characters; `None` if absent, or
    /// (with a message) if longer. A parameter given more than once is read from its last
    /// value, as Django's `QueryDict.get` reads it: the others never reach a statement.
    pub fn text(&mut self, name: &str, max_chars: usize) -> Option<&'q str> {
        let value = self.query.get(name)?;
        if value.chars().count() > max_chars {
            self.errors.add(name, too_many_chars(max_chars));
            return None;
        }
        Some(value)
    }

    /// [`ListParams::text`], then `parse`; its message, if any, is recorded under `name`.
    pub fn read<T>(
        &mut self,
        name: &str,
        max_chars: usize,
        parse: impl FnOnce(&'q str) -> Result<Option<T>, String>,
    ) -> Option<T> {
        let value = self.text(name, max_chars)?;
        match parse(value) {
            Ok(value) => value,
            Err(message) => {
                self.errors.add(name, message);
                None
            }
        }
    }

    /// The distinct terms of `name`, in the order first given: the value split at
    /// `rules.separator`, each piece trimmed, blank pieces skipped. Every other piece is a term
    /// for the bounds, a repeat included (so that the bound is one a schema's `pattern` can
    /// state), then NUL characters are dropped (no database takes one in text) and repeats
    /// with them. Too long or too many terms: a message (both, if both), and no terms.
    pub fn terms(&mut self, name: &str, rules: TermRules) -> Vec<String> {
        let Some(value) = self.query.get(name) else {
            return Vec::new();
        };
        let mut messages = Vec::new();
        if value.chars().count() > rules.max_chars {
            messages.push(too_many_chars(rules.max_chars));
        }
        let terms = distinct_terms(value, rules);
        if terms.is_none() {
            messages.push(format!(
                "Ensure this field has no more than {} {}.",
                rules.max_terms, rules.noun
            ));
        }
        match terms {
            Some(terms) if messages.is_empty() => terms,
            _ => {
                self.errors.extend(name, messages);
                Vec::new()
            }
        }
    }

    /// `Ok(())` if every parameter read cleanly, otherwise the 400 listing every message.
    pub fn finish(self) -> Result<(), ApiError> {
        self.errors.into_result()
    }
}

/// `value`'s terms without NULs or repeats, or `None` past `rules.max_terms` (found without
/// reading further: the work is bounded whatever the value holds).
fn distinct_terms(value: &str, rules: TermRules) -> Option<Vec<String>> {
    let mut pieces = value
        .split(rules.separator)
        .map(str::trim)
        .filter(|piece| !piece.is_empty());
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    for piece in pieces.by_ref().take(rules.max_terms) {
        let term = piece.replace('\0', "").trim().to_owned();
        if !term.is_empty() && seen.insert(term.clone()) {
            terms.push(term);
        }
    }
    pieces.next().is_none().then_some(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: TermRules = TermRules {
        max_chars: 20,
        max_terms: 3,
        noun: "terms",
        separator: |c| c == ',' || c.is_whitespace(),
    };

    fn terms(query: &str) -> Result<Vec<String>, serde_json::Value> {
        let query = Query::parse(query);
        let mut params = ListParams::new(&query);
        let terms = params.terms("q", WORDS);
        match params.finish() {
            Ok(()) => Ok(terms),
            Err(error) => Err(serde_json::from_slice(&error.body()).unwrap()),
        }
    }

    #[test]
    fn terms_are_split_trimmed_and_distinct_in_first_order() {
        assert_eq!(terms("q=b,%20a%09,,b").unwrap(), ["b", "a"]);
        assert_eq!(terms("q=a%00c+a+ac").unwrap(), ["ac", "a"]);
        assert_eq!(terms("q=x+x,x").unwrap(), ["x"]);
        assert_eq!(terms("q=%00+x+x%00").unwrap(), ["x"]);
        assert_eq!(terms("q=").unwrap(), Vec::<String>::new());
        assert_eq!(terms("other=1").unwrap(), Vec::<String>::new());
        // The last value counts, however often the parameter is given.
        let repeated = ["q=a b c d"; 50].join("&") + "&q=last";
        assert_eq!(terms(&repeated).unwrap(), ["last"]);
    }

    #[test]
    fn terms_past_a_bound_are_a_400_naming_the_parameter() {
        let three = Err(serde_json::json!({"q": ["Ensure this field has no more than 3 terms."]}));
        assert_eq!(terms("q=a+b+c+d"), three);
        // Terms as given: a repeat counts, and so does a piece that is only NULs.
        assert_eq!(terms("q=a+a+a+a"), three);
        assert_eq!(terms("q=a+b+c+%00"), three);
        assert_eq!(
            terms(&format!("q={}", "x".repeat(21))),
            Err(serde_json::json!({"q": ["Ensure this field has no more than 20 characters."]}))
        );
        let both = vec!["w"; 2000].join(",");
        assert_eq!(
            terms(&format!("q={both}")),
            Err(serde_json::json!({"q": [
                "Ensure this field has no more than 20 characters.",
                "Ensure this field has no more than 3 terms.",
            ]}))
        );
        // Characters, not bytes.
        assert_eq!(terms(&format!("q={}", "é".repeat(20))).unwrap().len(), 1);
    }

    #[test]
    fn every_parameter_is_reported_at_once() {
        let query = Query::parse("a=toolong&b=bad&c=ok&q=1+2+3+4");
        let mut params = ListParams::new(&query);
        assert_eq!(params.text("a", 3), None);
        let parsed: Option<i64> = params.read("b", 10, |text| {
            text.parse()
                .map(Some)
                .map_err(|_| "Enter a number.".to_owned())
        });
        assert_eq!(parsed, None);
        assert_eq!(params.text("c", 2), Some("ok"));
        assert_eq!(params.text("missing", 2), None);
        assert!(params.terms("q", WORDS).is_empty());
        let error = params.finish().unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&error.body()).unwrap(),
            serde_json::json!({
                "a": ["Ensure this field has no more than 3 characters."],
                "b": ["Enter a number."],
                "q": ["Ensure this field has no more than 3 terms."],
            })
        );
    }
}
