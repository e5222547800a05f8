//! A scenario's RSS and open-fd series as one PNG: RSS (MiB) on top, open fds below, one line
//! per process (pid) over the soak's time, drawn with the bench's plotters setup.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::series::Sample;
use crate::bench::charts::{COLORS, draw, font};

/// Draws `samples` (one scenario's) into `path`.
pub fn draw_series(scenario: &str, samples: &[Sample], path: &Path) -> anyhow::Result<()> {
    font()?;
    let mut lines: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        lines.entry(s.series()).or_default().push(s);
    }
    let t0 = samples.iter().map(|s| s.t).fold(f64::MAX, f64::min);
    let t1 = samples
        .iter()
        .map(|s| s.t)
        .fold(0.0, f64::max)
        .max(t0 + 1.0);
    let minutes = |t: f64| (t - t0) / 60.0;
    let top_rss = samples
        .iter()
        .map(|s| s.rss_kib as f64 / 1024.0)
        .fold(1.0, f64::max)
        * 1.15;
    let top_fds = samples.iter().map(|s| s.fds).max().unwrap_or(1) as f64 * 1.15;

    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let (upper, lower) = root.split_vertically(400);
    for (area, what, top) in [
        (&upper, "RSS (MiB)", top_rss),
        (&lower, "open fds", top_fds),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{scenario}: {what}"), ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..minutes(t1), 0.0..top)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw)?;
        for (i, (series, points)) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let value = |s: &Sample| {
                if what.starts_with("RSS") {
                    s.rss_kib as f64 / 1024.0
                } else {
                    s.fds as f64
                }
            };
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|s| (minutes(s.t), value(s))),
                    color.stroke_width(2),
                ))
                .map_err(draw)?
                .label(series.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
        }
        // A legend only for a few lines: a scenario that kills replicas has many.
        if lines.len() <= 8 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(draw)?;
        }
    }
    root.present().map_err(draw)?;
    Ok(())
}
