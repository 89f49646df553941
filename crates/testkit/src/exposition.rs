//! The Prometheus text exposition format (0.0.4), parsed strictly: the
//! one scraper of `/metrics` for every test. [`parse`] checks what a
//! scraper relies on (names, quoting, one `TYPE` before a family's samples,
//! no duplicate series, no negative counter); [`Exposition::value`] and
//! [`Exposition::sum`] read samples by name and labels; [`counter`] reads
//! a counter off a live `/metrics` body in one call.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with any `_total`, `_bucket`, ... suffix).
    pub name: String,
    /// Label name → value.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, ...).
    pub types: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

fn is_name(s: &str, allow_colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (allow_colon && c == ':');
    matches!(chars.next(), Some(c) if ok_first(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':'))
}

/// A sample value, `NaN` and `±Inf` included.
pub fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` (the part after the name); returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// The family a sample name belongs to (`x_bucket` → `x` for a histogram).
pub fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_sum", "_count", "_bucket"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("summary" | "histogram")
            ) {
                return Some(base);
            }
        }
    }
    None
}

/// Parses `text` strictly: every rule a scraper relies on is checked.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    let mut helps = BTreeSet::new();
    let mut seen_samples = BTreeSet::new();
    let mut families_with_samples = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("HELP without name".into()))?;
                    if !is_name(name, true) || !helps.insert(name.to_string()) {
                        return Err(err("bad or repeated HELP".into()));
                    }
                }
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("TYPE without name".into()))?;
                    let kind = parts
                        .next()
                        .ok_or_else(|| err("TYPE without type".into()))?;
                    if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if families_with_samples.contains(name) {
                        return Err(err("TYPE after samples of the family".into()));
                    }
                    if exp
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(err("repeated TYPE".into()));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("expected a space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|e| err(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family = family_of(name, &exp.types)
            .ok_or_else(|| err(format!("sample of {name} without a TYPE")))?;
        let kind = exp.types[family].clone();
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if kind == "summary" && name == family && !labels.contains_key("quantile") {
            return Err(err("summary sample without quantile".into()));
        }
        families_with_samples.insert(family.to_string());
        if !seen_samples.insert((name.to_string(), format!("{labels:?}"))) {
            return Err(err("duplicate sample".into()));
        }
        exp.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(exp)
}

impl Exposition {
    /// The first sample `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).map(|s| s.value).next()
    }

    /// The sum over every sample `name` whose labels include `labels`
    /// (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The family names of the samples, as PromQL selects them.
    pub fn families(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter_map(|s| family_of(&s.name, &self.types))
            .map(str::to_owned)
            .collect()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// The counter `name` (summed over the series whose labels include
/// `labels`) in a `/metrics` body; panics, showing the body, when the body
/// does not parse.
pub fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    match parse(text) {
        Ok(exp) => exp.sum(name, labels) as u64,
        Err(e) => panic!("unreadable /metrics ({e}):\n{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_sums_by_labels() {
        let text = "# TYPE a_total counter\na_total{k=\"x\"} 2\na_total{k=\"y\"} 3\n";
        assert_eq!(counter(text, "a_total", &[]), 5);
        assert_eq!(counter(text, "a_total", &[("k", "y")]), 3);
        assert_eq!(counter(text, "b_total", &[]), 0);
        let exp = parse(text).unwrap_or_default();
        assert_eq!(exp.value("a_total", &[("k", "x")]), Some(2.0));
        assert_eq!(exp.families().len(), 1);
    }
}
