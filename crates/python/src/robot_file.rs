//! The robot file (`robot.yaml`): the names a team gives its Smart Devices.
//!
//! ```yaml
//! # name: TYPE UID
//! left_drive: koala-bear 61400000000000000000001
//! arm: polar-bear 56668397794435742564352
//! ```
//!
//! One flat mapping from a name to the device's catalog type and decimal UID. Every rule is
//! checked when the file is loaded, and every rejection names the file and the line, like
//! the catalog's errors: a name that is not an identifier, a name or a UID given twice, a
//! type that is not a Smart Device type of the catalog, a UID that does not parse, and a UID
//! whose device id belongs to another type. The file is read with the catalog's line-keeping YAML
//! tree ([`pitcrew_catalog::yaml`]), which carries the line of every key and value and
//! refuses aliases, so a line always points at the text that produced the value.

use std::path::Path;

use pitcrew_catalog::yaml::{self, Node, NodeKind};
use pitcrew_catalog::{Catalog, Uid};

/// One named device of a robot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotDevice {
    /// The team's name for it (`left_drive`).
    pub name: String,
    /// Its catalog type (`koala-bear`).
    pub type_name: String,
    /// Its UID.
    pub uid: Uid,
    /// 1-based line of its entry.
    pub line: usize,
}

/// A loaded, validated robot file.
#[derive(Debug, Clone, Default)]
pub struct RobotFile {
    origin: String,
    devices: Vec<RobotDevice>,
}

/// Why a robot file did not load: `robot.yaml:3: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotFileError {
    /// The file, as given.
    pub file: String,
    /// 1-based line of the offending entry (`None` when the file could not be read).
    pub line: Option<usize>,
    /// What is wrong, as a sentence a student can act on.
    pub message: String,
}

impl std::fmt::Display for RobotFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for RobotFileError {}

impl RobotFile {
    /// Reads and validates the robot file at `path` against `catalog`.
    ///
    /// # Errors
    /// [`RobotFileError`] naming the file and line of the first problem.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<RobotFile, RobotFileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RobotFileError {
            file: origin.clone(),
            line: None,
            message: format!("cannot read the robot file: {e}"),
        })?;
        RobotFile::from_yaml_str(&text, &origin, catalog)
    }

    /// Validates robot-file text; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`RobotFile::load`].
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        catalog: &Catalog,
    ) -> Result<RobotFile, RobotFileError> {
        let err = |line: usize, message: String| RobotFileError {
            file: origin.to_owned(),
            line: Some(line),
            message,
        };
        let mut devices: Vec<RobotDevice> = Vec::new();
        for (key, value) in entries(text).map_err(|(line, m)| err(line, m))? {
            let device = parse_entry(&key, &value, catalog).map_err(|m| err(key.line, m))?;
            if let Some(first) = devices.iter().find(|d| d.name == device.name) {
                return Err(err(
                    key.line,
                    format!(
                        "`{}` is named twice (first on line {})",
                        device.name, first.line
                    ),
                ));
            }
            if let Some(first) = devices.iter().find(|d| d.uid == device.uid) {
                return Err(err(
                    key.line,
                    format!(
                        "UID {} is already named `{}` on line {}",
                        device.uid, first.name, first.line
                    ),
                ));
            }
            devices.push(device);
        }
        Ok(RobotFile {
            origin: origin.to_owned(),
            devices,
        })
    }

    /// Where the file came from, as given (`robot.yaml`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The named devices, in file order.
    pub fn devices(&self) -> &[RobotDevice] {
        &self.devices
    }

    /// The device called `name`.
    pub fn get(&self, name: &str) -> Option<&RobotDevice> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The name given to `uid`, if any.
    pub fn name_of(&self, uid: Uid) -> Option<&str> {
        self.devices
            .iter()
            .find(|d| d.uid == uid)
            .map(|d| d.name.as_str())
    }
}

/// A scalar of the file and its line.
#[derive(Debug)]
struct Scalar {
    text: String,
    plain: bool,
    line: usize,
}

impl Scalar {
    /// `node` if it is a scalar, else the `(line, message)` of what `shape` says it is not.
    fn of(
        node: Node,
        shape: impl Fn(usize, &str) -> (usize, String),
    ) -> Result<Scalar, (usize, String)> {
        match node.kind {
            NodeKind::Scalar { text, plain } => Ok(Scalar {
                text,
                plain,
                line: node.line,
            }),
            NodeKind::Map(_) => Err(shape(node.line, "a mapping")),
            NodeKind::Seq(_) => Err(shape(node.line, "a list")),
        }
    }
}

/// The top-level `key: value` pairs, or `(line, message)` for the first thing that is not
/// one flat mapping of scalars. Syntax errors come first (the whole file is parsed before
/// its shape is looked at), so a broken line is reported as such.
fn entries(text: &str) -> Result<Vec<(Scalar, Scalar)>, (usize, String)> {
    let root = yaml::parse(text, "a robot file")
        .map_err(|e| (e.line, format!("YAML syntax error: {}", e.message)))?;
    let entries = match root.map(|n| (n.line, n.kind)) {
        None => return Ok(Vec::new()),
        Some((_, NodeKind::Map(entries))) => entries,
        Some((line, NodeKind::Seq(_))) => {
            return Err((line, "expected `name: TYPE UID` lines, found a list".into()))
        }
        Some((_, NodeKind::Scalar { text, .. })) if text.is_empty() => return Ok(Vec::new()),
        Some((line, NodeKind::Scalar { text, .. })) => {
            return Err((
                line,
                format!("expected `name: TYPE UID` lines, found `{text}`"),
            ))
        }
    };
    let shape = |line: usize, what: &str| {
        (
            line,
            format!(
                "expected `TYPE UID` such as `koala-bear 61400000000000000000001`, found {what}"
            ),
        )
    };
    entries
        .into_iter()
        .map(|(k, v)| Ok((Scalar::of(k, shape)?, Scalar::of(v, shape)?)))
        .collect()
}

/// Checks one `name: TYPE UID` entry against the catalog.
fn parse_entry(key: &Scalar, value: &Scalar, catalog: &Catalog) -> Result<RobotDevice, String> {
    let name = key.text.as_str();
    if !is_identifier(name) {
        return Err(format!(
            "`{name}` is not a valid device name (use letters, digits and `_`, not starting \
             with a digit, e.g. left_drive)"
        ));
    }
    let words: Vec<&str> = value.text.split_whitespace().collect();
    let [type_name, uid_text] = words.as_slice() else {
        let found = if value.text.is_empty() {
            "nothing".to_owned()
        } else {
            format!("`{}`", value.text)
        };
        return Err(format!(
            "`{name}`: expected `TYPE UID` such as `koala-bear 61400000000000000000001`, \
             found {found}"
        ));
    };
    if !value.plain {
        return Err(format!(
            "`{name}`: write `TYPE UID` without quotes (found `{}`)",
            value.text
        ));
    }
    let Some(ty) = catalog.get(type_name).filter(|t| t.is_smart()) else {
        let known: Vec<&str> = catalog
            .types()
            .filter(|t| t.is_smart())
            .map(|t| t.name())
            .collect();
        return Err(format!(
            "`{name}`: `{type_name}` is not a Smart Device type of the catalog (known: {})",
            known.join(", ")
        ));
    };
    let uid: Uid = uid_text
        .parse()
        .map_err(|e| format!("`{name}`: `{uid_text}` is not a device UID: {e}"))?;
    if ty.device_id() != Some(uid.device_id()) {
        let actual = catalog
            .type_of(uid)
            .map_or_else(|| "no known type".to_owned(), |t| format!("a {}", t.name()));
        return Err(format!(
            "`{name}`: UID {uid} has device id {}, so it is {actual}, not a {type_name} \
             (device id {}); check the UID with `pitcrew devices`",
            uid.device_id(),
            ty.device_id().unwrap_or_default(),
        ));
    }
    Ok(RobotDevice {
        name: name.to_owned(),
        type_name: ty.name().to_owned(),
        uid,
        line: key.line,
    })
}

/// Letters, digits and `_`, not starting with a digit: so a name never reads as a UID.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn koala(serial: u64) -> Uid {
        Uid::new(13, 0, serial)
    }

    fn load(text: &str) -> Result<RobotFile, RobotFileError> {
        RobotFile::from_yaml_str(text, "robot.yaml", Catalog::embedded())
    }

    fn error(text: &str) -> (Option<usize>, String) {
        let e = load(text).unwrap_err();
        assert!(e.to_string().starts_with("robot.yaml:"), "{e}");
        (e.line, e.message)
    }

    #[test]
    fn names_types_and_uids_load_with_their_lines() {
        let text = format!(
            "# the drive base\nleft_drive: koala-bear {}\n\nright_drive: koala-bear {}\n",
            koala(1),
            koala(2)
        );
        let file = load(&text).unwrap();
        let left = file.get("left_drive").unwrap();
        assert_eq!(
            (left.type_name.as_str(), left.uid, left.line),
            ("koala-bear", koala(1), 2)
        );
        assert_eq!(file.get("right_drive").unwrap().line, 4);
        assert_eq!(file.name_of(koala(2)), Some("right_drive"));
        assert!(load("").unwrap().devices().is_empty());
        assert!(load("# nothing yet\n").unwrap().devices().is_empty());
    }

    #[test]
    fn every_rule_is_an_error_on_its_line() {
        let k1 = koala(1);
        let (line, m) = error(&format!(
            "a: koala-bear {k1}\nleft drive: koala-bear {}\n",
            koala(2)
        ));
        assert_eq!(line, Some(2));
        assert!(m.contains("not a valid device name"), "{m}");

        let (line, m) = error(&format!(
            "a: koala-bear {k1}\nb: koala-bear {}\na: koala-bear {}\n",
            koala(2),
            koala(3)
        ));
        assert_eq!(
            (line, m.as_str()),
            (Some(3), "`a` is named twice (first on line 1)")
        );

        let (line, m) = error(&format!("a: koala-bear {k1}\nb: koala-bear {k1}\n"));
        assert_eq!(line, Some(2));
        assert!(m.contains("already named `a` on line 1"), "{m}");

        let (line, m) = error(&format!("\n\na: koala-beer {k1}\n"));
        assert_eq!(line, Some(3));
        assert!(m.contains("`koala-beer` is not a Smart Device type"), "{m}");
        assert!(m.contains("koala-bear"), "lists the known types: {m}");

        let (line, m) = error("a: gamepad 0\n");
        assert_eq!(line, Some(1));
        assert!(m.contains("not a Smart Device type"), "{m}");

        let (line, m) = error("a: koala-bear 12x\n");
        assert_eq!(line, Some(1));
        assert!(m.contains("`12x` is not a device UID"), "{m}");

        let polar = Uid::new(12, 0, 5);
        let (_, m) = error(&format!("a: koala-bear {polar}\n"));
        assert!(m.contains("so it is a polar-bear, not a koala-bear"), "{m}");

        let (line, m) = error(&format!("a: koala-bear\nb: koala-bear {k1}\n"));
        assert_eq!(line, Some(1));
        assert!(m.contains("expected `TYPE UID`"), "{m}");

        let (line, m) = error(&format!("a: koala-bear {k1}\nb:\n  type: koala-bear\n"));
        assert_eq!(line, Some(3));
        assert!(m.contains("found a mapping"), "{m}");

        let (line, m) = error(&format!("a: \"koala-bear {k1}\"\n"));
        assert_eq!(line, Some(1));
        assert!(m.contains("without quotes"), "{m}");

        let (line, m) = error("- koala-bear 1\n");
        assert_eq!(line, Some(1));
        assert!(m.contains("found a list"), "{m}");

        let (line, m) = error(&format!("a: koala-bear {k1}\nb: [1, 2\n"));
        assert!(line >= Some(2), "{line:?}");
        assert!(m.contains("YAML syntax error"), "{m}");
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e =
            RobotFile::load(Path::new("/nonexistent/robot.yaml"), Catalog::embedded()).unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/robot.yaml: cannot read"),
            "{e}"
        );
    }
}
