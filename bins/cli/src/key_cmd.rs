//! `pitcrew key`: makes and shows the keys that say who may drive, change and stop the
//! robot from the network (README, "Threat model").
//!
//! * `pitcrew key new FILE` writes a new team key (mode 0600, never over an existing file);
//!   `--field` a field controller's key, which carries the robot's CURVE server key so the
//!   field controller can reach the robot's TCP endpoints (run it where the team key is, with
//!   `--key-file`). `--if-missing` makes it a no-op when FILE exists (the systemd unit's
//!   first start).
//! * `pitcrew key show FILE` prints the kind and fingerprint, so two machines can be checked
//!   to hold the same key without showing it; `--curve` adds the CURVE keys a third-party
//!   ZeroMQ client (pyzmq, czmq) needs to reach the router or the log forwarder over TCP.

use std::path::PathBuf;

use anyhow::Context;
use pitcrew::endpoint::curve::{z85, CurvePair};
use pitcrew::key::{Key, KeyKind};
use pitcrew::options::SharedOptions;

/// Arguments of `pitcrew key`.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// `pitcrew key` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Write a new key to FILE (mode 0600).
    New {
        /// Where to write it (e.g. /etc/pitcrew/team.key on a robot).
        file: PathBuf,
        /// A field controller's key (match phases and the emergency stop only).
        #[arg(long)]
        field: bool,
        /// Do nothing when FILE exists already.
        #[arg(long)]
        if_missing: bool,
    },
    /// Print a key file's kind and fingerprint.
    Show {
        /// The key file.
        file: PathBuf,
        /// Also print the CURVE keys a third-party ZeroMQ client uses with this key.
        #[arg(long)]
        curve: bool,
    },
}

fn load_any(file: &std::path::Path) -> anyhow::Result<Key> {
    Key::load(file, KeyKind::Team).or_else(|team_error| {
        Key::load(file, KeyKind::Field).map_err(|_| anyhow::anyhow!("{team_error}"))
    })
}

impl KeyArgs {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// When a file cannot be written or read, or is not a key.
    pub fn run(&self, options: &SharedOptions) -> anyhow::Result<()> {
        match &self.command {
            KeyCommand::New {
                file,
                field,
                if_missing,
            } => {
                if *if_missing && file.exists() {
                    return Ok(());
                }
                let kind = if *field {
                    KeyKind::Field
                } else {
                    KeyKind::Team
                };
                let mut key = Key::generate(kind)?;
                if *field {
                    let team = options.key_file.as_deref().context(
                        "a field key carries the robot's server key: give the robot's team key with --key-file",
                    )?;
                    let team = Key::load(team, KeyKind::Team)?;
                    key = key.with_robot_server_key(z85(&CurvePair::server(&team)?.public));
                }
                key.write_new(file)?;
                println!(
                    "wrote a new {} key to {} (fingerprint {})",
                    kind.name(),
                    file.display(),
                    key.fingerprint()
                );
                Ok(())
            }
            KeyCommand::Show { file, curve } => {
                let key = load_any(file)?;
                println!("kind: {}", key.kind().name());
                println!("fingerprint: {}", key.fingerprint());
                if *curve {
                    let client = CurvePair::client(&key)?;
                    let server = match (key.kind(), key.robot_server_key()) {
                        (KeyKind::Team, _) => z85(&CurvePair::server(&key)?.public),
                        (KeyKind::Field, Some(z)) => z.to_owned(),
                        (KeyKind::Field, None) => String::new(),
                    };
                    println!("server_public: {server}");
                    println!("client_public: {}", z85(&client.public));
                    println!("client_secret: {}", z85(&client.secret));
                }
                Ok(())
            }
        }
    }
}
