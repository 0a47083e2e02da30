//! `chart`: a run's table as an SVG line chart, drawn with `plotters`' SVG
//! backend. Both axes are logarithmic: N goes from 10 to 19,000, and the
//! costs from a few hundred nanoseconds to milliseconds, so a straight line
//! of slope 1 is a cost proportional to N and a flat line is a cost that
//! does not depend on N.

use plotters::prelude::*;

use crate::results::{Table, thousands};
use crate::waitbench::Call;

/// The chart's size in SVG units (it scales to any width: the file keeps
/// only its `viewBox`).
const SIZE: (u32, u32) = (700, 520);

/// The colour and stroke of each call's line; the floor (`getppid`) is
/// grey and dashed.
fn style(call: Call) -> RGBColor {
    match call {
        Call::Select => RGBColor(200, 40, 40),
        Call::Poll => RGBColor(230, 130, 0),
        Call::EpollWait => RGBColor(30, 90, 200),
        Call::EpollCtl => RGBColor(40, 150, 70),
        Call::Getppid => RGBColor(120, 120, 120),
    }
}

/// Draws `table` and returns the SVG text.
pub fn draw(table: &Table) -> Result<String, String> {
    let mut svg = String::new();
    draw_into(table, &mut svg).map_err(|e| format!("drawing the chart failed: {e}"))?;
    Ok(responsive(&svg))
}

fn draw_into<'a>(
    table: &Table,
    svg: &'a mut String,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let points = |call: Call| -> Vec<(f64, f64)> {
        table
            .rows
            .iter()
            .filter_map(|row| row.ns(call).map(|ns| (row.n as f64, ns)))
            .collect()
    };
    let all: Vec<(f64, f64)> = Call::ALL.into_iter().flat_map(points).collect();
    if all.is_empty() {
        return Err("the table has no measured values".into());
    }
    let (x_min, x_max) = bounds(all.iter().map(|p| p.0));
    let (y_min, y_max) = bounds(all.iter().map(|p| p.1));

    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, footer) = root.split_vertically(SIZE.1 - 44);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "One call, one of N watched descriptors ready",
            ("sans-serif", 24),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(84)
        .build_cartesian_2d(
            (x_min / 1.6..x_max * 1.6).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("N, watched descriptors")
        .y_desc("nanoseconds per call")
        .x_label_formatter(&|x| thousands(x.round() as u64))
        .y_label_formatter(&|y| thousands(y.round() as u64))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 18))
        .light_line_style(WHITE)
        .draw()?;
    for call in Call::ALL {
        let data = points(call);
        if data.is_empty() {
            continue;
        }
        let color = style(call);
        let label = match call {
            Call::Getppid => "getppid (the floor)",
            other => other.label(),
        };
        if call == Call::Getppid {
            chart
                .draw_series(DashedLineSeries::new(
                    data.clone(),
                    8,
                    5,
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        } else {
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(3)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    let caption = format!("{}; {}", table.machine, table.date);
    footer.draw_text(
        &caption,
        &("sans-serif", 16).into_font().color(&BLACK.mix(0.8)),
        (16, 14),
    )?;
    root.present()?;
    Ok(())
}

/// The smallest and largest of `values`.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The book shows the chart at the column's width, on a phone too: keep the
/// `viewBox` and drop the fixed `width` and `height` plotters writes.
fn responsive(svg: &str) -> String {
    let fixed = format!("width=\"{}\" height=\"{}\" ", SIZE.0, SIZE.1);
    svg.replacen(&fixed, "", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Row;

    #[test]
    fn draws_one_line_per_call_and_the_machine() {
        let table = Table {
            rows: vec![
                Row {
                    n: 10,
                    ns: [
                        Some(700.0),
                        Some(650.0),
                        Some(300.0),
                        Some(900.0),
                        Some(200.0),
                    ],
                },
                Row {
                    n: 1000,
                    ns: [
                        Some(30_000.0),
                        Some(25_000.0),
                        Some(310.0),
                        Some(950.0),
                        Some(201.0),
                    ],
                },
            ],
            machine: "Test CPU, 2 cores, Linux 6.1".to_string(),
            date: "2026-11-30 09:00 UTC".to_string(),
            notes: vec![],
        };
        let svg = draw(&table).unwrap();
        assert!(svg.contains("viewBox=\"0 0 700 520\""), "{svg}");
        assert!(
            !svg.contains("<svg width"),
            "the fixed size is still on <svg>"
        );
        for label in [
            "select",
            "poll",
            "epoll_wait",
            "epoll_ctl ADD+DEL",
            "getppid (the floor)",
        ] {
            assert!(svg.contains(label), "no legend entry {label}");
        }
        assert!(svg.contains("Test CPU, 2 cores, Linux 6.1; 2026-11-30 09:00 UTC"));
        // Four solid lines (one per call but the floor) plus the legend's.
        assert!(svg.matches("<polyline").count() >= 4, "{svg}");
    }
}
