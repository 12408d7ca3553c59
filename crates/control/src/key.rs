//! The team key and the field key: the secrets that say who may drive, change and stop the
//! robot from the network (README, "Threat model"; robot-state.md, "Who may drive").
//!
//! A key is 32 random bytes in a small text file (`pitcrew key new`, mode 0600). Nothing
//! uses the key itself: every use has its own subkey, derived with HKDF-SHA256 under a label
//! ([`Key::derive`]), so that a login token shown in a URL or the CURVE key pair of a
//! ZeroMQ endpoint reveals nothing of the key that authenticates driver links.
//!
//! The **team key** permits everything (drive, configure, stop); the **field key**, held by
//! an event's field controller, permits only match phases and the emergency stop. The robot
//! holds both (`--key-file`, `--field-key-file`); a driver's laptop holds the team key.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::Sha256;

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;

/// Which key: who holds it decides what it permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The team's key: drive, configure, stop.
    Team,
    /// The field controller's key: match phases and the emergency stop only.
    Field,
}

impl KeyKind {
    /// The first word of a key file of this kind.
    fn header(self) -> &'static str {
        match self {
            Self::Team => "pitcrew-team-key-v1",
            Self::Field => "pitcrew-field-key-v1",
        }
    }

    /// How the kind is named in messages and on the wire's key id.
    pub fn name(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::Field => "field",
        }
    }
}

/// What a subkey is for: each label derives an unrelated 32-byte secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The MAC of control datagrams (driver station → robot).
    ControlMac,
    /// The MAC of the robot's answers to a driver station.
    ReplyMac,
    /// The CURVE secret key of the suite's TCP endpoints (router, log forwarder).
    CurveServer,
    /// The CURVE secret key of a client holding this key.
    CurveClient,
    /// The dashboard's login token.
    LoginToken,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ControlMac => b"pitcrew v1 control mac",
            Self::ReplyMac => b"pitcrew v1 reply mac",
            Self::CurveServer => b"pitcrew v1 curve server",
            Self::CurveClient => b"pitcrew v1 curve client",
            Self::LoginToken => b"pitcrew v1 login token",
        }
    }
}

/// A loaded key. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    kind: KeyKind,
    secret: [u8; KEY_BYTES],
    /// In a field key file: the robot's CURVE server public key (Z85), which a field
    /// controller cannot derive without the team key.
    robot: Option<String>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({}, fingerprint {})",
            self.kind.name(),
            self.fingerprint()
        )
    }
}

/// Why a key file could not be used; each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error(
        "cannot read the key file {path}: {source} (create one with `pitcrew key new {path}`)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read the file: the key is no longer a secret of the team.
    #[error(
        "the key file {path} may be read by other users (mode {mode:o}): run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a key file of the expected kind.
    #[error("{path} is not a pitcrew {kind} key file ({why})")]
    Format {
        /// The file.
        path: PathBuf,
        /// The kind expected.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A new key could not be written.
    #[error("cannot write the key file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The operating system gave no randomness.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

impl Key {
    /// A new random key of `kind`.
    ///
    /// # Errors
    /// When the operating system's random source fails.
    pub fn generate(kind: KeyKind) -> Result<Key, KeyError> {
        let mut secret = [0u8; KEY_BYTES];
        getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key {
            kind,
            secret,
            robot: None,
        })
    }

    /// A key of `kind` from its bytes (tests, and the dashboard's typed-in key).
    pub fn from_bytes(kind: KeyKind, secret: [u8; KEY_BYTES]) -> Key {
        Key {
            kind,
            secret,
            robot: None,
        }
    }

    /// This key with the robot's CURVE server public key (Z85) written beside it, for a
    /// field key handed to a field controller.
    pub fn with_robot_server_key(mut self, z85: String) -> Key {
        self.robot = Some(z85);
        self
    }

    /// The robot's CURVE server public key (Z85) stored with a field key.
    pub fn robot_server_key(&self) -> Option<&str> {
        self.robot.as_deref()
    }

    /// Which key this is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The subkey for `purpose`: HKDF-SHA256 with the key as input keying material.
    pub fn derive(&self, purpose: Purpose) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(self.kind.header().as_bytes()), &self.secret);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so this cannot fail.
        if hk.expand(purpose.label(), &mut out).is_err() {
            unreachable!("HKDF-SHA256 expands 32 bytes");
        }
        out
    }

    /// A short public name of the key (8 hex digits of a hash of it), printed by
    /// `pitcrew key show` and at start so two machines can be checked to hold the same key
    /// without showing it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = Sha256::digest(self.secret);
        hex(&digest[..4])
    }

    /// The dashboard's login token: a derived secret, so the URL never shows the key.
    pub fn login_token(&self) -> String {
        hex(&self.derive(Purpose::LoginToken)[..16])
    }

    /// The file's text: a header line naming the kind, then the key in hex.
    pub fn to_file_text(&self) -> String {
        let robot = self
            .robot
            .as_ref()
            .map(|z| format!("robot-server-key {z}\n"))
            .unwrap_or_default();
        format!(
            "# pitcrew {} key. Keep it secret: whoever holds it can {}.\n{} {}\n{robot}",
            self.kind.name(),
            match self.kind {
                KeyKind::Team => "drive, change and stop this robot",
                KeyKind::Field => "start matches on and emergency-stop this robot",
            },
            self.kind.header(),
            hex(&self.secret)
        )
    }

    /// Parses a key file's text (comments start with `#`).
    fn parse(text: &str, kind: KeyKind, path: &Path) -> Result<Key, KeyError> {
        let bad = |why: String| KeyError::Format {
            path: path.to_owned(),
            kind: kind.name(),
            why,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| bad("it is empty".into()))?;
        let mut robot = None;
        for extra in lines {
            match extra.split_once(char::is_whitespace) {
                Some(("robot-server-key", z)) if z.trim().len() == 40 => {
                    robot = Some(z.trim().to_owned());
                }
                _ => return Err(bad(format!("unexpected line {extra:?}"))),
            }
        }
        let (header, value) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `HEADER HEX` on one line".into()))?;
        if header != kind.header() {
            let other = [KeyKind::Team, KeyKind::Field]
                .into_iter()
                .find(|k| k.header() == header);
            return Err(bad(match other {
                Some(k) => format!("it holds a {} key", k.name()),
                None => format!("unknown header {header:?}"),
            }));
        }
        let value = value.trim();
        if value.len() != KEY_BYTES * 2 {
            return Err(bad(format!(
                "the key has {} hex digits, expected {}",
                value.len(),
                KEY_BYTES * 2
            )));
        }
        let mut secret = [0u8; KEY_BYTES];
        for (i, byte) in secret.iter_mut().enumerate() {
            let pair = value.get(2 * i..2 * i + 2).unwrap_or("");
            *byte = u8::from_str_radix(pair, 16)
                .map_err(|_| bad(format!("{pair:?} is not a hex byte")))?;
        }
        Ok(Key {
            kind,
            secret,
            robot,
        })
    }

    /// Loads a key of `kind` from `path`, refusing a file other users may read.
    ///
    /// # Errors
    /// When the file is unreadable, readable by group or others, or not such a key file.
    pub fn load(path: &Path, kind: KeyKind) -> Result<Key, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Key::parse(&text, kind, path)
    }

    /// Writes the key to a new file `path` with mode 0600; never overwrites one.
    ///
    /// # Errors
    /// When the file exists or cannot be created.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let write = |source| KeyError::Write {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write)?;
        file.write_all(self.to_file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write)
    }
}

/// The keys an instance holds, as configured (`--key-file`, `--field-key-file`).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The team key; without it the suite accepts commands from loopback only.
    pub team: Option<Key>,
    /// The field controller's key, if the robot takes part in field-controlled matches.
    pub field: Option<Key>,
}

impl Keys {
    /// Loads the configured keys.
    ///
    /// # Errors
    /// As [`Key::load`]. A field key alone is a field controller's: it connects with it;
    /// a robot needs the team key to require keys at all.
    pub fn load(team: Option<&Path>, field: Option<&Path>) -> Result<Keys, KeyError> {
        let team = team.map(|p| Key::load(p, KeyKind::Team)).transpose()?;
        let field = field.map(|p| Key::load(p, KeyKind::Field)).transpose()?;
        Ok(Keys { team, field })
    }

    /// Whether commands from the network need a key.
    pub fn required(&self) -> bool {
        self.team.is_some()
    }

    /// The key of `kind`, if held.
    pub fn get(&self, kind: KeyKind) -> Option<&Key> {
        match kind {
            KeyKind::Team => self.team.as_ref(),
            KeyKind::Field => self.field.as_ref(),
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("team.key");
        let key = Key::generate(KeyKind::Team).unwrap();
        key.write_new(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Key::load(&path, KeyKind::Team).unwrap(), key);
        assert!(
            key.write_new(&path).is_err(),
            "an existing key is never overwritten"
        );
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let team = Key::generate(KeyKind::Team).unwrap();
        team.write_new(&path).unwrap();
        let e = Key::load(&path, KeyKind::Field).unwrap_err().to_string();
        assert!(e.contains("it holds a team key"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&path, KeyKind::Team).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::write(&path, "pitcrew-team-key-v1 abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Key::load(&path, KeyKind::Team).unwrap_err().to_string();
        assert!(e.contains("3 hex digits, expected 64"), "{e}");
        let e = Key::load(&dir.path().join("none"), KeyKind::Team)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pitcrew key new"), "{e}");
    }

    #[test]
    fn subkeys_differ_by_purpose_and_by_kind() {
        let secret = [7u8; KEY_BYTES];
        let team = Key::from_bytes(KeyKind::Team, secret);
        let field = Key::from_bytes(KeyKind::Field, secret);
        assert_ne!(
            team.derive(Purpose::ControlMac),
            team.derive(Purpose::ReplyMac)
        );
        assert_ne!(
            team.derive(Purpose::ControlMac),
            field.derive(Purpose::ControlMac)
        );
        assert_eq!(team.login_token().len(), 32);
        assert!(
            !format!("{team:?}").contains("0707"),
            "Debug hides the secret"
        );
    }
}
