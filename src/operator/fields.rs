//! Operator state as hash fields: the writer [`Operator::save`] fills and
//! the reader [`Operator::load`] parses, with the one error type for a
//! stored value that cannot be read back.
//!
//! [`Operator::save`]: super::Operator::save
//! [`Operator::load`]: super::Operator::load

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// A stored field that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored field {field:?} has unreadable value {value:?}")]
pub struct FieldError {
    /// The field.
    pub field: String,
    /// Its value (truncated to 40 characters; empty when missing).
    pub value: String,
}

/// Field/value pairs of a symbol's state, in the order written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldWriter {
    pairs: Vec<(String, String)>,
}

impl FieldWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `name = value`.
    pub fn put(&mut self, name: &str, value: impl Display) {
        self.pairs.push((name.to_owned(), value.to_string()));
    }

    /// The pairs written.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// The pairs written so far.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// A symbol's stored hash, read by name.
#[derive(Debug, Clone, Copy)]
pub struct StoredFields<'a> {
    map: &'a HashMap<String, String>,
}

impl<'a> StoredFields<'a> {
    /// The fields of `map`.
    pub fn new(map: &'a HashMap<String, String>) -> Self {
        Self { map }
    }

    /// True when `name` is stored.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The raw value of `name`.
    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).map(String::as_str)
    }

    /// `name` parsed as `T`; a missing or unreadable value is an error.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T, FieldError> {
        let value = self.raw(name).unwrap_or("");
        value.parse().map_err(|_| FieldError {
            field: name.to_owned(),
            value: value.chars().take(40).collect(),
        })
    }
}
