//! Who may see the page and who may command the robot from it.
//!
//! The page and its feed take one secret, the login token, as `?token=` on `/` and on
//! `/feed`. With a token configured, every request needs it, from loopback too: the
//! robot's own address is no proof of who sits at the keyboard. Without one the page is
//! open to look at, and the commands that move or stop the robot (driver-station input,
//! enable, disable, E-STOP, a match, a param write) are taken from loopback peers only
//! (robot-state.md, "Who may drive"), which the dashboard says when it starts.
//!
//! The token comes from the team key (`TeamKey::login_token()`) once the key is there;
//! until then `--dashboard-token` sets it. This module only compares.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

/// The shortest token accepted from `--dashboard-token`: a guessable one is no lock.
pub const MIN_TOKEN_LEN: usize = 16;

/// The dashboard's access rules.
#[derive(Debug, Clone)]
pub struct Access {
    expected: Option<String>,
}

impl Access {
    /// Rules for `expected`: `None` is an open page with loopback-only commands.
    pub fn new(expected: Option<String>) -> Access {
        Access { expected }
    }

    /// Whether a token is needed.
    pub fn locked(&self) -> bool {
        self.expected.is_some()
    }

    /// The token the URL logged at start carries, if any.
    pub fn token(&self) -> Option<&str> {
        self.expected.as_deref()
    }

    /// Whether a request presenting `presented` may load the page or open the feed.
    /// Compared in constant time, so response timing tells nothing about the token.
    pub fn admits(&self, presented: Option<&str>) -> bool {
        match (&self.expected, presented) {
            (None, _) => true,
            (Some(want), Some(got)) => want.as_bytes().ct_eq(got.as_bytes()).into(),
            (Some(_), None) => false,
        }
    }

    /// Whether an admitted client at `peer` may command the robot: always with a token
    /// (it proved itself), from loopback only without one.
    pub fn commands_from(&self, peer: SocketAddr) -> bool {
        self.locked() || peer.ip().is_loopback()
    }
}

/// A `--dashboard-token` value: at least [`MIN_TOKEN_LEN`] URL-safe characters, so it
/// goes into a link unescaped.
///
/// # Errors
/// A one-line message when it is too short or has other characters.
pub fn parse_token(s: &str) -> Result<String, String> {
    let url_safe = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if s.len() < MIN_TOKEN_LEN || s.len() > 256 || !url_safe {
        return Err(format!(
            "use {MIN_TOKEN_LEN} to 256 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_page_needs_the_exact_token_from_everywhere() {
        let access = Access::new(Some("abcdefghijklmnop".into()));
        assert!(access.admits(Some("abcdefghijklmnop")));
        assert!(!access.admits(Some("abcdefghijklmno")));
        assert!(!access.admits(Some("")));
        assert!(!access.admits(None));
        assert!(access.commands_from("192.0.2.7:5000".parse().unwrap()));
    }

    #[test]
    fn an_open_page_takes_commands_from_loopback_only() {
        let access = Access::new(None);
        assert!(access.admits(None));
        assert!(access.commands_from("127.0.0.1:5000".parse().unwrap()));
        assert!(access.commands_from("[::1]:5000".parse().unwrap()));
        assert!(!access.commands_from("192.0.2.7:5000".parse().unwrap()));
    }

    #[test]
    fn tokens_parse() {
        assert!(parse_token("0123456789abcdef").is_ok());
        assert!(parse_token("short").is_err());
        assert!(parse_token("0123456789abcdef&x=1").is_err());
    }
}
