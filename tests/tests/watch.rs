//! `pitcrew watch` as a full-screen view on a real terminal (tmux), against the suite of
//! `scripts/supervise --emulate`: the devices and their values appear and follow a write,
//! the keys pick a device and show its values, and `q` quits, restoring the terminal.
//! Piped, it prints plain lines instead.

use pitcrew_e2e::bin;
use pitcrew_e2e::supervisor::{Instance, Supervisor};
use pitcrew_e2e::tmux::Tmux;

#[test]
fn the_terminal_view_shows_live_devices_follows_keys_and_quits_cleanly() {
    let inst = Instance::new("watchtui");
    let _sup = Supervisor::start(&inst, &["--emulate"]);
    let tmux = Tmux::start(inst.name(), "watch", (170, 30), "bash --norc --noprofile");
    let mut line = format!(
        "{} {} watch --interface 127.0.0.1",
        bin("pitcrew").display(),
        inst.shared_args().join(" ")
    );
    line.push_str("; echo WATCH-EXITED-$?");
    tmux.keys(&[&line, "Enter"]);
    let screen = tmux.wait_screen("11 devices with values", |s| {
        s.contains("devices (11)") && s.contains("team-flag")
    });
    assert!(screen.contains("pitcrew watch"), "{screen}");

    // A write shows up on its row.
    let flag = screen
        .lines()
        .find(|l| l.contains("team-flag"))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.len() > 10 && w.bytes().all(|b| b.is_ascii_digit()))
        })
        .expect("the team-flag's uid on screen")
        .to_owned();
    pitcrew_e2e::run_ok(inst.cli(&["write", &flag, "led2=true"]));
    tmux.wait_screen("the written value", |s| {
        s.lines()
            .any(|l| l.contains(&flag) && l.contains("led2=true"))
    });

    // Keys: pick the first device and open its details.
    tmux.keys(&["Down"]);
    tmux.keys(&["Enter"]);
    // Two panels side by side: the list and the picked device's values.
    let screen = tmux.wait_screen("a device's details", |s| s.contains("┐┌"));
    // The README's picture of the view.
    let path = pitcrew_e2e::doc_picture("watch.txt");
    std::fs::write(&path, screen.trim_end()).expect("the picture is written");

    // q quits and the shell's screen is back (the alternate screen is left).
    tmux.keys(&["q"]);
    let screen = tmux.wait_screen("the shell again", |s| s.contains("WATCH-EXITED-0"));
    assert!(
        !screen.contains("devices (11)"),
        "the view was left on the screen:\n{screen}"
    );
}

#[test]
fn piped_it_prints_plain_lines() {
    let inst = Instance::new("watchplain");
    let _sup = Supervisor::start(&inst, &["--emulate"]);
    let out =
        pitcrew_e2e::run_ok(inst.cli(&["watch", "--interface", "127.0.0.1", "--count", "60"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--- seq "), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences in piped output: {text}"
    );
    // The broker's other notifications on the group (the robot state) are not malformed.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("malformed"), "on a healthy suite: {said}");
    // Nor do the emulated devices count errors (they answered the broker's answers to their
    // heartbeats with INVALID_TYPE, four a second each), as `pitcrew devices` shows them.
    let out = pitcrew_e2e::run_ok(inst.cli(&["devices", "--json"]));
    let devices: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let devices = devices.as_array().expect("a list");
    assert_eq!(devices.len(), 11);
    for d in devices {
        assert_eq!(d["counters"]["errors"], 0, "{d}");
    }
}
