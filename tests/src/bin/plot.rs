//! `pitcrew-plot`: draws the curves of `scripts/bench scale` from its JSON lines (stdin)
//! into SVG images in a directory (the README shows them):
//!
//! * `scale_e2e.svg`: e2e latency p50/p99 (µs) and broker CPU (%) over devices;
//! * `scale_rpc.svg`: RPC latency p50/p99 (µs) and calls/s over concurrent clients;
//! * `scale_logs.svg`: log forwarder records/s over publishers.
//!
//!     pitcrew-plot DIR < scale.jsonl

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One curve: its name and (x, y) points.
type Curve = (&'static str, Vec<(f64, f64)>);

/// Draws `curves` (sharing an x axis) into `file`.
fn draw(
    file: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> anyhow::Result<()> {
    let points = curves.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_max) = (1.0f64, 1.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let root = SVGBackend::new(file, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (i, (name, p)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(p.iter().map(|&xy| Circle::new(xy, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: pitcrew-plot DIR < scale.jsonl")?;
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let mut lines = Vec::new();
    for line in std::io::stdin().lock().lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line?) {
            lines.push(v);
        }
    }
    // The (x, y) points of `bench` lines, x and y by key.
    let series = |bench: &str, x: &str, y: &str| -> Vec<(f64, f64)> {
        lines
            .iter()
            .filter(|v| v["bench"] == bench)
            .filter_map(|v| Some((v[x].as_f64()?, v[y].as_f64()?)))
            .collect()
    };
    draw(
        &dir.join("scale_e2e.svg"),
        "e2e latency over devices written every cycle",
        "koala-bears",
        "µs",
        &[
            ("p50", series("scale_e2e_us", "devices", "p50")),
            ("p99", series("scale_e2e_us", "devices", "p99")),
        ],
    )?;
    draw(
        &dir.join("scale_broker_cpu.svg"),
        "broker CPU over devices written every cycle (500 Hz)",
        "koala-bears",
        "% of a core",
        &[(
            "broker CPU",
            series("scale_e2e_us", "devices", "broker_cpu_pct"),
        )],
    )?;
    draw(
        &dir.join("scale_rpc.svg"),
        "RPC latency over concurrent clients",
        "clients",
        "µs",
        &[
            ("p50", series("scale_rpc", "clients", "p50")),
            ("p99", series("scale_rpc", "clients", "p99")),
        ],
    )?;
    draw(
        &dir.join("scale_rpc_throughput.svg"),
        "RPC throughput over concurrent clients",
        "clients",
        "calls/s",
        &[("calls/s", series("scale_rpc", "clients", "calls_per_s"))],
    )?;
    draw(
        &dir.join("scale_logs.svg"),
        "log forwarder throughput over publishers",
        "publishers",
        "records/s",
        &[(
            "records/s",
            series("logfwd_throughput", "publishers", "records_per_s"),
        )],
    )?;
    Ok(())
}
