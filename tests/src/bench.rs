//! What the joystick-path benchmarks (`pitcrew-e2ebench`, `pitcrew-recbench`) share: their
//! device broker's options, their stick values and their ports.

use std::net::UdpSocket;

/// A free UDP port on 127.0.0.1 (bound, then released for the process under test).
///
/// # Errors
/// No port could be bound.
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The value of change `i`: never the same twice in a row, so every change is a write.
pub fn stick(i: usize) -> f32 {
    ((i % 200) as f32 - 100.0) / 100.0
}

/// The options of a benchmark's device broker: the terminals matching `tty_glob` as its
/// serial devices, updates on a multicast port of its own (so suites running side by side
/// do not hear each other), then `realtime`.
///
/// # Errors
/// No UDP port for the updates.
pub fn broker_args(tty_glob: &str, realtime: &[&str]) -> anyhow::Result<Vec<String>> {
    let update_addr = format!("udp://239.255.77.3:{}", free_udp_port()?);
    let mut args: Vec<String> = [
        "--virtual-addr",
        "tcp://127.0.0.1:0",
        "--serial-glob",
        tty_glob,
        "--update-interface",
        "127.0.0.1",
        "--update-addr",
        &update_addr,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(realtime.iter().map(|s| (*s).to_owned()));
    Ok(args)
}
