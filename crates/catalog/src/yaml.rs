//! A small YAML document tree that keeps the line of every node, built from the event stream
//! of `saphyr-parser`: the one reader of pitcrew's hand-written YAML files (the catalog, the
//! Python package's robot file, the simulated robot's description and its field).
//!
//! Why not a serde deserializer: every semantic error of these files (duplicate names,
//! bounds, widths, a UID of the wrong type) must name the line of the offending key, so we
//! need the position of each key and value, and mappings must keep duplicate keys so that
//! we can report them ourselves with the file's own wording. Aliases are refused so that a
//! line number always points at the text that produced the value.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// One YAML node and the (1-based) line where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    /// The node's content.
    pub kind: NodeKind,
}

/// The content of a [`Node`].
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars (never a number or bool).
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in document order, duplicates kept.
    Map(Vec<(Node, Node)>),
}

/// A syntax error with its line.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses a single YAML document; `Ok(None)` for an empty stream. `what` names the kind of
/// file in errors ("a catalog", "a robot file").
///
/// # Errors
/// [`SyntaxError`] for what is not YAML, a second document or an alias.
pub fn parse(text: &str, what: &str) -> Result<Option<Node>, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut docs = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: e.info().to_owned(),
        })?;
        let line = span.start.line();
        let node = match event {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(SyntaxError {
                        line,
                        message: format!("{what} is a single YAML document"),
                    });
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(SyntaxError {
                    line,
                    message: format!("aliases are not supported in {what}"),
                })
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(line, Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(line, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(l, items)) => Node {
                    line: l,
                    kind: NodeKind::Seq(items),
                },
                Some(Frame::Map(l, entries, _)) => Node {
                    line: l,
                    kind: NodeKind::Map(entries),
                },
                None => {
                    return Err(SyntaxError {
                        line,
                        message: "unbalanced collection end".into(),
                    })
                }
            },
            Event::Scalar(text, style, _, _) => Node {
                line,
                kind: NodeKind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
            },
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            None => root = Some(node),
        }
    }
    Ok(root)
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short description of the node's kind for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { text, .. } => format!("`{text}`"),
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
        }
    }

    /// A plain-scalar YAML 1.2 bool.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A plain-scalar YAML 1.2 integer (decimal, `0x`, `0o`).
    pub fn as_int(&self) -> Option<i128> {
        let NodeKind::Scalar { text, plain: true } = &self.kind else {
            return None;
        };
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let v = if let Some(h) = body.strip_prefix("0x") {
            i128::from_str_radix(h, 16).ok()?
        } else if let Some(o) = body.strip_prefix("0o") {
            i128::from_str_radix(o, 8).ok()?
        } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
            body.parse().ok()?
        } else {
            return None;
        };
        Some(if neg { -v } else { v })
    }

    /// A plain-scalar YAML 1.2 number (integer, float, `.inf`, `-.inf`; `.nan` included so
    /// that the caller can refuse it by name).
    pub fn as_number(&self) -> Option<f64> {
        if let Some(i) = self.as_int() {
            return Some(i as f64);
        }
        let NodeKind::Scalar { text, plain: true } = &self.kind else {
            return None;
        };
        match text.as_str() {
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
            t if t.bytes().any(|b| b.is_ascii_digit())
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                t.parse().ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_duplicates() {
        let doc = parse("a: 1\nb:\n  - x\n  - {k: v}\na: 2\n", "a test")
            .unwrap()
            .unwrap();
        let NodeKind::Map(entries) = doc.kind else {
            panic!("not a map")
        };
        let lines: Vec<usize> = entries.iter().map(|(k, _)| k.line).collect();
        assert_eq!(lines, vec![1, 2, 5]);
        assert_eq!(entries[2].0.as_scalar(), Some("a"));
    }

    #[test]
    fn scalars() {
        let n = |t: &str| parse(t, "a test").unwrap().unwrap();
        assert_eq!(n("-.inf").as_number(), Some(f64::NEG_INFINITY));
        assert_eq!(n("0x10").as_int(), Some(16));
        assert_eq!(n("'12'").as_int(), None);
        assert_eq!(n("1.5e3").as_number(), Some(1500.0));
        assert_eq!(n("true").as_bool(), Some(true));
        assert_eq!(n("yes").as_bool(), None);
    }

    #[test]
    fn refuses_aliases_and_reports_syntax_lines() {
        assert!(parse("a: &x 1\nb: *x\n", "a test")
            .unwrap_err()
            .message
            .contains("alias"));
        let e = parse("a: 1\nb: [1, 2\n", "a test").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        assert!(parse("", "a test").unwrap().is_none());
    }
}
