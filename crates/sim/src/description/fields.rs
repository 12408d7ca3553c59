//! Reading the mappings of a description: typed fields with the line of each, unknown keys
//! refused (a misspelt `whel_radius` is an error, not a silent default).

use pitcrew_catalog::yaml::{Node, NodeKind};

/// An error at a line of the file being read.
#[derive(Debug, Clone, PartialEq)]
pub struct At {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl At {
    /// This error in `file`.
    pub fn in_file(self, file: &str) -> super::DescriptionError {
        super::DescriptionError {
            file: file.to_owned(),
            line: Some(self.line),
            message: self.message,
        }
    }
}

/// The root of the YAML document `text`, a `what` ("a robot description"): syntax errors
/// and an empty document are errors at their line.
pub fn document(text: &str, what: &str) -> Result<Node, At> {
    let root = pitcrew_catalog::yaml::parse(text, what).map_err(|e| At {
        line: e.line,
        message: format!("YAML syntax error: {}", e.message),
    })?;
    root.map_or_else(|| fail(1, format!("{what} is empty")), Ok)
}

/// `Err(At)` at `line`.
pub fn fail<T>(line: usize, message: impl Into<String>) -> Result<T, At> {
    Err(At {
        line,
        message: message.into(),
    })
}

/// One mapping of the file, its keys checked against what its reader knows.
pub struct Fields<'a> {
    line: usize,
    what: &'a str,
    entries: Vec<(&'a str, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// `node` as the mapping `what` (`drivetrain`, `a sensor`), with only `known` keys, each
    /// once.
    pub fn of(node: &'a Node, what: &'a str, known: &[&str]) -> Result<Fields<'a>, At> {
        let NodeKind::Map(pairs) = &node.kind else {
            return fail(
                node.line,
                format!("{what} must be a mapping, found {}", node.describe()),
            );
        };
        let mut entries: Vec<(&str, &Node)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(key) = k.as_scalar() else {
                return fail(
                    k.line,
                    format!("a key of {what} must be a name, found {}", k.describe()),
                );
            };
            if !known.contains(&key) {
                return fail(
                    k.line,
                    format!(
                        "unknown key `{key}` in {what} (known: {})",
                        known.join(", ")
                    ),
                );
            }
            if let Some((_, first)) = entries.iter().find(|(name, _)| *name == key) {
                return fail(
                    k.line,
                    format!(
                        "`{key}` is given twice in {what} (first on line {})",
                        first.line
                    ),
                );
            }
            entries.push((key, v));
        }
        Ok(Fields {
            line: node.line,
            what,
            entries,
        })
    }

    /// The line of the mapping.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The node of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// The node of `key`, which must be given.
    pub fn need(&self, key: &str) -> Result<&'a Node, At> {
        self.get(key).map_or_else(
            || fail(self.line, format!("{} needs `{key}`", self.what)),
            Ok,
        )
    }

    /// The number at `key`, which must be given and finite.
    pub fn number(&self, key: &str) -> Result<f64, At> {
        number(self.need(key)?, key)
    }

    /// The number at `key`, or `default` when not given.
    pub fn number_or(&self, key: &str, default: f64) -> Result<f64, At> {
        self.get(key).map_or(Ok(default), |n| number(n, key))
    }

    /// The text at `key`, which must be given.
    pub fn text(&self, key: &str) -> Result<(&'a str, usize), At> {
        let n = self.need(key)?;
        n.as_scalar().map(|t| (t, n.line)).map_or_else(
            || {
                fail(
                    n.line,
                    format!("`{key}` must be text, found {}", n.describe()),
                )
            },
            Ok,
        )
    }

    /// The bool at `key`, or `default`.
    pub fn flag_or(&self, key: &str, default: bool) -> Result<bool, At> {
        self.get(key).map_or(Ok(default), |n| {
            n.as_bool().map_or_else(
                || {
                    fail(
                        n.line,
                        format!("`{key}` must be true or false, found {}", n.describe()),
                    )
                },
                Ok,
            )
        })
    }
}

/// `node` as a finite number named `key`.
pub fn number(node: &Node, key: &str) -> Result<f64, At> {
    match node.as_number() {
        Some(v) if v.is_finite() => Ok(v),
        _ => fail(
            node.line,
            format!("`{key}` must be a number, found {}", node.describe()),
        ),
    }
}

/// `node` as a point `[x, y]` (metres) named `key`.
pub fn point(node: &Node, key: &str) -> Result<(f64, f64), At> {
    match &node.kind {
        NodeKind::Seq(items) if items.len() == 2 => {
            Ok((number(&items[0], key)?, number(&items[1], key)?))
        }
        _ => fail(
            node.line,
            format!(
                "`{key}` must be a point `[x, y]` in metres, found {}",
                node.describe()
            ),
        ),
    }
}

/// `node` as a list named `key`.
pub fn list<'a>(node: &'a Node, key: &str) -> Result<&'a [Node], At> {
    match &node.kind {
        NodeKind::Seq(items) => Ok(items),
        _ => fail(
            node.line,
            format!("`{key}` must be a list, found {}", node.describe()),
        ),
    }
}
