//! A real terminal for the tests of full-screen programs (`pitcrew watch`, the driver
//! station's status line): a tmux server of its own (`-L`), so tests run side by side, with
//! one session whose screen is read back as text; killed on drop.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Generous bound for a screen to show what it should on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// A tmux server and the name of its one session.
pub struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// Starts session `session` on server `socket` (a test's own name), `width` × `height`
    /// characters, running `command`.
    ///
    /// # Panics
    /// When tmux is missing or the session cannot start.
    pub fn start(socket: &str, session: &str, (width, height): (u16, u16), command: &str) -> Tmux {
        let tmux = Tmux {
            socket: socket.to_owned(),
            session: session.to_owned(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let started = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        assert!(started.status.success(), "tmux new-session: {started:?}");
        tmux
    }

    /// Runs a tmux command on this server.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs (scripts/setup installs it)")
    }

    /// The session's screen now, as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Waits until the screen satisfies `pred` and returns it.
    ///
    /// # Panics
    /// Naming `what` with the screen, when it does not within a generous bound.
    pub fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `keys` (tmux key names: `Enter`, `Down`, `Space`, or text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Whether the session still runs (its command has not exited).
    pub fn running(&self) -> bool {
        self.run(&["has-session", "-t", &self.session])
            .status
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
