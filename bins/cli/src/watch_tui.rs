//! `pitcrew watch` on a terminal: a full-screen live view (ratatui) of the robot state, one
//! row per device with its values and the age of its data, the gamepads, and the last log
//! lines. Keys: ↑/↓ (or k/j) pick a device, Enter shows all of its values, q or Esc quits
//! (Ctrl-C too: the terminal is in raw mode, so it arrives as a key), and the terminal is
//! restored however the view ends.
//!
//! It reads what a dashboard reads: the update multicast (devices and the robot state), the
//! log forwarder's stream, the gamepad buffers, and `device-service.list_devices` once a
//! second for the types.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew::codec::to_json;
use pitcrew::config::Config;
use pitcrew::endpoint::{PubSubOptions, Subscriber};
use pitcrew::gamepad::{Gamepad, GamepadState};
use pitcrew::logging::record::{level_name, LogRecord};
use pitcrew::rpc::Client;
use pitcrew::updates::Datagram;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use serde_json::Value;
use tokio::net::UdpSocket;

/// How often the screen is redrawn (and the gamepads read): the update rate.
const FRAME: Duration = Duration::from_millis(100);
/// Log lines kept for the bottom panel.
const LOG_LINES: usize = 50;
/// Gamepads shown.
const PADS: u32 = 2;

/// What the view shows.
#[derive(Default)]
struct View {
    values: BTreeMap<String, serde_json::Map<String, Value>>,
    seen: BTreeMap<String, Instant>,
    types: BTreeMap<String, String>,
    robot: Option<(Instant, Value)>,
    logs: VecDeque<String>,
    pads: Vec<GamepadState>,
    table: TableState,
    detail: bool,
}

impl View {
    fn update(&mut self, bytes: &[u8]) {
        let devices = match pitcrew::updates::decode(bytes) {
            Some(Datagram::RobotState(state)) => {
                self.robot = Some((Instant::now(), state));
                return;
            }
            Some(Datagram::Devices { devices, .. }) => devices,
            None => return,
        };
        for (uid, vals) in &devices {
            let entry = self.values.entry(uid.clone()).or_default();
            let fresh = vals.as_object().is_some_and(|m| !m.is_empty());
            for (k, x) in vals.as_object().into_iter().flatten() {
                entry.insert(k.clone(), x.clone());
            }
            if fresh || !self.seen.contains_key(uid) {
                self.seen.insert(uid.clone(), Instant::now());
            }
        }
    }

    fn log(&mut self, record: &LogRecord) {
        let text = |k: &str| {
            pitcrew::logging::record::record_get(&record.record, k)
                .and_then(pitcrew::codec::Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let time = text("timestamp");
        let line = format!(
            "{} {:<5} {}: {}",
            time.get(11..19).unwrap_or(&time),
            level_name(record.level).to_ascii_uppercase(),
            record.app,
            text("event")
        );
        if self.logs.len() == LOG_LINES {
            self.logs.pop_front();
        }
        self.logs.push_back(line);
    }

    fn selected_uid(&self) -> Option<&String> {
        self.values.keys().nth(self.table.selected()?)
    }

    fn key(&mut self, code: KeyCode) {
        let n = self.values.len();
        match code {
            KeyCode::Down | KeyCode::Char('j') if n > 0 => {
                let i = self.table.selected().map_or(0, |i| (i + 1).min(n - 1));
                self.table.select(Some(i));
            }
            KeyCode::Up | KeyCode::Char('k') if n > 0 => {
                let i = self.table.selected().map_or(0, |i| i.saturating_sub(1));
                self.table.select(Some(i));
            }
            KeyCode::Enter => self.detail = !self.detail,
            _ => {}
        }
    }

    /// Draws the whole screen: the robot's state, the devices (with the selected one's
    /// values beside them when asked), the gamepads and the last log lines.
    fn draw(&mut self, f: &mut Frame) {
        let [header, devices, pads, logs] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(6),
            Constraint::Length(4),
            Constraint::Length(8),
        ])
        .areas(f.area());
        f.render_widget(self.header(), header);
        let table = self.devices_table();
        if self.detail {
            let [list, detail] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(devices);
            f.render_stateful_widget(table, list, &mut self.table);
            f.render_widget(self.detail_panel(), detail);
        } else {
            f.render_stateful_widget(table, devices, &mut self.table);
        }
        f.render_widget(self.pads_panel(), pads);
        f.render_widget(self.logs_panel(), logs);
    }

    /// One row per device: type, UID, age of its data and its values; red when its data
    /// is over 2 s old (or never came), which is what a driver must notice first.
    fn devices_table(&self) -> Table<'static> {
        let now = Instant::now();
        let rows: Vec<Row> = self
            .values
            .iter()
            .map(|(uid, vals)| {
                let age = self.seen.get(uid).map(|t| now.duration_since(*t));
                let text: Vec<String> = vals
                    .iter()
                    .map(|(k, v)| format!("{k}={}", short(v)))
                    .collect();
                let age_cell = age.map_or("-".to_owned(), |a| format!("{:.1}s", a.as_secs_f64()));
                let stale = age.is_none_or(|a| a > Duration::from_secs(2));
                Row::new(vec![
                    self.types.get(uid).cloned().unwrap_or_default(),
                    uid.clone(),
                    age_cell,
                    text.join(" "),
                ])
                .style(if stale {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new()
                })
            })
            .collect();
        let title = format!(
            " devices ({}) · ↑↓ pick · Enter details · q quit ",
            self.values.len()
        );
        Table::new(
            rows,
            [
                Constraint::Length(13),
                Constraint::Length(24),
                Constraint::Length(6),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(vec!["type", "uid", "age", "values"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::new().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    }

    /// One line per gamepad slot: its sticks and buttons, or that it is not connected.
    fn pads_panel(&self) -> Paragraph<'static> {
        let pad_lines: Vec<Line> = (0u32..)
            .zip(&self.pads)
            .map(|(i, p)| {
                Line::from(if p.connected {
                    format!(
                        "gamepad {i}: left ({:+.2}, {:+.2}) right ({:+.2}, {:+.2}) buttons {:#07x}",
                        p.pad.lx, p.pad.ly, p.pad.rx, p.pad.ry, p.pad.btn
                    )
                } else {
                    format!("gamepad {i}: not connected")
                })
            })
            .collect();
        Paragraph::new(pad_lines).block(Block::new().borders(Borders::ALL).title(" gamepads "))
    }

    /// The last six log lines, oldest first.
    fn logs_panel(&self) -> Paragraph<'_> {
        let log_lines: Vec<Line> = self
            .logs
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(|l| Line::from(l.as_str()))
            .collect();
        Paragraph::new(log_lines).block(Block::new().borders(Borders::ALL).title(" logs "))
    }

    fn header(&self) -> Paragraph<'static> {
        let line = match &self.robot {
            None => Line::from("robot: no state received yet"),
            Some((at, state)) => {
                let name = state["state"].as_str().unwrap_or("?").to_ascii_uppercase();
                let colour = match name.as_str() {
                    "TELEOP" => Color::Green,
                    "AUTONOMOUS" => Color::Blue,
                    "ESTOPPED" => Color::Red,
                    _ => Color::Gray,
                };
                let age = at.elapsed();
                let mut rest = format!("  {}", pitcrew::robot::status::one_line(state));
                if age > Duration::from_millis(1500) {
                    rest.push_str(&format!("  (no state for {:.0} s)", age.as_secs_f64()));
                }
                Line::from(vec![
                    Span::styled(
                        format!(" {name} "),
                        Style::new()
                            .bg(colour)
                            .fg(Color::Black)
                            .add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(rest),
                ])
            }
        };
        Paragraph::new(line).block(Block::new().borders(Borders::ALL).title(" pitcrew watch "))
    }

    fn detail_panel(&self) -> Paragraph<'static> {
        let (title, lines) = match self.selected_uid() {
            Some(uid) => (
                format!(
                    " {} {uid} ",
                    self.types.get(uid).cloned().unwrap_or_default()
                ),
                self.values
                    .get(uid)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| Line::from(format!("{k:<16} {}", short(v))))
                    .collect(),
            ),
            None => (
                " details ".to_owned(),
                vec![Line::from("pick a device with ↑/↓")],
            ),
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title(title))
    }
}

fn short(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if !v.is_u64() && !v.is_i64() => format!("{x:.3}"),
        _ => v.to_string(),
    }
}

/// Runs the view until a quit key.
///
/// # Errors
/// Terminal or socket errors.
pub async fn run(socket: UdpSocket, config: &Config) -> anyhow::Result<()> {
    let (keys_tx, mut keys) = tokio::sync::mpsc::channel(64);
    // crossterm's read blocks: a thread of its own hands the keys over.
    std::thread::Builder::new()
        .name("watch-keys".into())
        .spawn(move || {
            while let Ok(ev) = event::read() {
                if keys_tx.blocking_send(ev).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the key reader")?;
    let mut logs = Subscriber::connect(
        &config.log_frontend_connect(),
        &[b""],
        PubSubOptions::default(),
    )
    .ok();
    let client = Client::connect(&config.frontend_connect(), "cli", Duration::from_secs(1)).ok();
    let mut terminal = ratatui::init();
    let result = async {
        let mut view = View::default();
        let mut pads: Vec<Option<Gamepad>> = (0..PADS).map(|_| None).collect();
        let mut tick = tokio::time::interval(FRAME);
        let mut types_at = Instant::now() - Duration::from_secs(10);
        let mut buf = vec![0u8; 65_536];
        loop {
            tokio::select! {
                r = socket.recv(&mut buf) => {
                    let n = r.context("receive")?;
                    view.update(buf.get(..n).unwrap_or_default());
                }
                frames = async { match logs.as_mut() { Some(s) => s.recv().await.ok(), None => std::future::pending().await } } => {
                    if let Some(record) = frames.and_then(|f| LogRecord::decode(&f).ok()) {
                        view.log(&record);
                    }
                }
                key = keys.recv() => {
                    if let Some(Event::Key(k)) = key {
                        if k.kind != KeyEventKind::Release {
                            let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                            if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                                return Ok::<(), anyhow::Error>(());
                            }
                            view.key(k.code);
                        }
                    }
                }
                _ = tick.tick() => {
                    view.pads = (0u32..).zip(pads.iter_mut()).map(|(i, slot)| {
                        if slot.is_none() {
                            *slot = Gamepad::open(&config.namespace, i).ok();
                        }
                        match slot.as_ref().map(Gamepad::state) {
                            Some(Ok(s)) => s,
                            _ => { *slot = None; GamepadState::NEUTRAL }
                        }
                    }).collect();
                    if types_at.elapsed() >= Duration::from_secs(1) {
                        types_at = Instant::now();
                        if let Some(client) = &client {
                            if let Ok(list) = client.call("device-service", "list_devices", vec![]).await {
                                for d in to_json(&list).as_array().into_iter().flatten() {
                                    if let (Some(uid), Some(ty)) = (d["uid"].as_str(), d["type"].as_str()) {
                                        view.types.insert(uid.to_owned(), ty.to_owned());
                                    }
                                }
                            }
                        }
                    }
                    terminal.draw(|f| view.draw(f)).context("cannot draw")?;
                }
            }
        }
    }
    .await;
    ratatui::restore();
    result
}
