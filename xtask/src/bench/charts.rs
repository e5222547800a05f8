//! PNG charts with plotters: its bitmap backend, text through ab_glyph (pure Rust, no
//! fontconfig) with a TrueType font read from the system (DejaVu Sans).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::bail;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::report::Report;

/// Where Debian and most distributions keep DejaVu Sans (package fonts-dejavu-core).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

pub(crate) const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
];

pub(crate) fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = FONTS
                .iter()
                .find(|p| Path::new(p).is_file())
                .ok_or_else(|| {
                    format!("no DejaVuSans.ttf in {FONTS:?} (install fonts-dejavu-core)")
                })?;
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path}: not a usable font"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Idle and peak RSS (median, summed per configuration) as grouped bars, with the min–max
/// range as a line on each bar.
pub fn memory(report: &Report, path: &Path) -> anyhow::Result<()> {
    font()?;
    if report.summaries.is_empty() {
        bail!("no results");
    }
    let n = report.summaries.len();
    let top = report
        .summaries
        .iter()
        .map(|s| s.peak_rss_mib.max.max(s.idle_rss_mib.max))
        .fold(1.0_f64, f64::max)
        * 1.2;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("RSS per configuration (MiB, N = {})", report.settings.n),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(draw)?;
    let keys: Vec<String> = report.summaries.iter().map(|s| s.key.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < keys.len() {
                keys[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("MiB")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw)?;
    for (series, (label, color)) in [("idle", COLORS[0]), ("peak", COLORS[1])]
        .into_iter()
        .enumerate()
    {
        let bars = report.summaries.iter().enumerate().map(|(i, s)| {
            let stat = if series == 0 {
                s.idle_rss_mib
            } else {
                s.peak_rss_mib
            };
            let x0 = i as f64 + 0.1 + 0.4 * series as f64;
            (x0, stat)
        });
        let bars: Vec<_> = bars.collect();
        chart
            .draw_series(bars.iter().map(|(x0, stat)| {
                Rectangle::new([(*x0, 0.0), (x0 + 0.38, stat.median)], color.filled())
            }))
            .map_err(draw)?
            .label(format!("{label} (median)"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|(x0, stat)| {
                PathElement::new(
                    vec![(x0 + 0.19, stat.min), (x0 + 0.19, stat.max)],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(draw)?;
        chart
            .draw_series(bars.iter().map(|(x0, stat)| {
                Text::new(
                    format!("{:.1}", stat.median),
                    (x0 + 0.05, stat.max + top * 0.02),
                    ("sans-serif", 14),
                )
            }))
            .map_err(draw)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

/// Attach and detach latency distributions (all runs pooled) as CDFs, one line per
/// configuration.
pub fn latency(report: &Report, path: &Path) -> anyhow::Result<()> {
    font()?;
    let max = report
        .summaries
        .iter()
        .flat_map(|s| {
            [
                report.latencies(&s.key, false),
                report.latencies(&s.key, true),
            ]
        })
        .filter_map(|v| v.last().copied())
        .fold(1.0_f64, f64::max)
        * 1.05;
    let root = BitMapBackend::new(path, (1000, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let (left, right) = root.split_horizontally(500);
    for (area, detach) in [(left, false), (right, true)] {
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!(
                    "{} latency, CDF (N = {})",
                    if detach { "detach" } else { "attach" },
                    report.settings.n
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max, 0.0..1.0)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("ms from request to done")
            .y_desc("fraction")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(draw)?;
        for (i, s) in report.summaries.iter().enumerate() {
            let v = report.latencies(&s.key, detach);
            let len = v.len().max(1) as f64;
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    v.iter()
                        .enumerate()
                        .map(|(k, ms)| (*ms, (k + 1) as f64 / len)),
                    color.stroke_width(2),
                ))
                .map_err(draw)?
                .label(s.key.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw)?;
    }
    root.present().map_err(draw)?;
    Ok(())
}

pub(crate) fn draw<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e:?}")
}

/// Idle RSS (median of the runs, summed per configuration) against the number of PVs (and as
/// many PVCs) present,
/// one line per configuration, with the min–max range as a bar at each point.
pub fn scale(report: &Report, path: &Path) -> anyhow::Result<()> {
    font()?;
    let counts = report.scale_counts();
    if counts.is_empty() {
        bail!("no scale results");
    }
    let right = counts.last().copied().unwrap_or(0).max(1) as f64 * 1.05;
    let top = report
        .scale
        .iter()
        .map(|s| s.sum_mib.max)
        .fold(1.0_f64, f64::max)
        * 1.2;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Idle RSS per configuration vs PVs and PVCs in the cluster (MiB)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-right * 0.02..right, 0.0..top)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("PersistentVolumes (and as many PersistentVolumeClaims)")
        .y_desc("MiB")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw)?;
    for (i, key) in report.keys().into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, super::report::Stat)> = counts
            .iter()
            .filter_map(|&count| {
                report
                    .scale
                    .iter()
                    .find(|s| s.key == key && s.count == count)
                    .map(|s| (count as f64, s.sum_mib))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(x, s)| (*x, s.median)),
                color.stroke_width(2),
            ))
            .map_err(draw)?
            .label(key.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(x, s)| Circle::new((*x, s.median), 4, color.filled())),
            )
            .map_err(draw)?;
        chart
            .draw_series(points.iter().map(|(x, s)| {
                PathElement::new(vec![(*x, s.min), (*x, s.max)], BLACK.stroke_width(2))
            }))
            .map_err(draw)?;
        chart
            .draw_series(points.iter().map(|(x, s)| {
                Text::new(
                    format!("{:.1}", s.median),
                    (*x + right * 0.01, s.median + top * 0.02),
                    ("sans-serif", 13),
                )
            }))
            .map_err(draw)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}
