//! PNG figures of a run, drawn by `plotters` into an RGB buffer and encoded by `image`:
//! - a training run's curves (`curves.png`): classifier loss and accuracy per epoch, and the
//!   Hebbian weight-norm trajectory;
//! - a spiking culture's validation curve (`validation.png`);
//! - `hebb bench roofline --png`: the adapter's two ceilings and every timed kernel under them.
//!
//! One figure is a row of panels. A panel is a set of series over linear or log10 axes. The
//! text is set in DejaVu Sans, embedded in the binary, so no system font library is needed.

use std::io::Cursor;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::error::{HebbError, Result};
use crate::train::checkpoint::write_atomic;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A solid line through the points, with a dot at each when there are few.
    Line,
    /// A thin, lighter line (a band's edge: the min or max beside a median).
    Thin,
    /// Dots only (kernels under a roofline, a selected epoch).
    Dots,
    /// A dashed line (a bound: a roof, a final test accuracy).
    Dashed,
}

/// One series of (x, y) points. Points with a non-finite coordinate, or a non-positive one
/// on a log axis, are left out.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub mark: Mark,
    /// Index into the palette; series of one quantity share a colour.
    pub colour: usize,
}

/// One panel of a figure.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Draw y from 0 (accuracies and losses) rather than from the data's minimum.
    pub y_from_zero: bool,
    /// x counts something (epochs): ticks only at whole numbers.
    pub x_whole: bool,
    /// The legend in the upper right corner (curves that fall) instead of the lower right
    /// (curves that rise).
    pub legend_top: bool,
    pub series: Vec<Series>,
}

/// Colour-blind-safe categorical palette (Okabe–Ito).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// Pixels of one panel.
const PANEL: (u32, u32) = (640, 440);

/// Registers the embedded font under plotters' "sans-serif" family, once per process.
fn font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font did not parse".to_string())
        })
        .clone()
}

/// Renders `panels` side by side and writes them to `path` as a PNG (atomically: a reader
/// never sees half a file).
pub fn write_png(path: &Path, panels: &[Panel]) -> Result<()> {
    let fail = |message: String| HebbError::Format {
        path: path.to_path_buf(),
        message: format!("drawing the figure: {message}"),
    };
    font().map_err(fail)?;
    let (w, h) = (PANEL.0 * panels.len().max(1) as u32, PANEL.1);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(area, panel).map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| fail("the pixel buffer has the wrong size".into()))?;
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| fail(e.to_string()))?;
    write_atomic(path, png.get_ref())
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw_panel(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, p: &Panel) -> DrawResult {
    let keep = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!p.log_x || x > 0.0) && (!p.log_y || y > 0.0)
    };
    let points: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied().filter(keep))
        .collect();
    if points.is_empty() {
        area.titled(&p.title, ("sans-serif", 20))?.draw(&Text::new(
            "(no data yet)",
            (PANEL.0 as i32 / 2 - 50, PANEL.1 as i32 / 2),
            ("sans-serif", 16),
        ))?;
        return Ok(());
    }
    let xs = axis_range(points.iter().map(|p| p.0), p.log_x, false);
    let ys = axis_range(points.iter().map(|p| p.1), p.log_y, p.y_from_zero);
    match (p.log_x, p.log_y) {
        (false, false) => draw_axes(area, p, xs, ys, keep),
        (false, true) => draw_axes(area, p, xs, ys.log_scale(), keep),
        (true, false) => draw_axes(area, p, xs.log_scale(), ys, keep),
        (true, true) => draw_axes(area, p, xs.log_scale(), ys.log_scale(), keep),
    }
}

/// A tick label: integers without a decimal point, other values with at most 4 significant
/// digits.
fn tick(v: &f64) -> String {
    if *v == v.round() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1e-3 && v.abs() < 1e5 {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.digits$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// The data's extent with a margin (a factor on log axes), never empty.
fn axis_range(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if log {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo / 2.0, hi * 2.0)
        };
        return lo / 1.5..hi * 1.5;
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let pad = 0.05 * span;
    (if from_zero && lo >= 0.0 {
        0.0
    } else {
        lo - pad
    })..hi + pad
}

fn draw_axes<X, Y>(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    p: &Panel,
    x: X,
    y: Y,
    keep: impl Fn(&(f64, f64)) -> bool,
) -> DrawResult
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    // On a whole-number axis, at most one tick per whole number.
    let x_ticks = if p.x_whole {
        let (lo, hi) = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.0))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        ((hi - lo).round() as usize + 1).clamp(2, 10)
    } else {
        10
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(x_ticks)
        .x_label_formatter(&|v| {
            if p.x_whole && v.fract() != 0.0 {
                String::new()
            } else {
                tick(v)
            }
        })
        .y_label_formatter(&tick)
        .draw()?;
    for s in &p.series {
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(&keep).collect();
        let colour = PALETTE[s.colour % PALETTE.len()];
        let legend = |c: RGBColor, width: u32| {
            move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(width))
        };
        let drawn = match s.mark {
            Mark::Line | Mark::Thin => {
                let (style, width) = if s.mark == Mark::Line {
                    (colour.stroke_width(2), 2)
                } else {
                    (colour.mix(0.45).stroke_width(1), 1)
                };
                if s.mark == Mark::Line && pts.len() <= 60 {
                    chart.draw_series(pts.iter().map(|&q| Circle::new(q, 3, colour.filled())))?;
                }
                let drawn = chart.draw_series(LineSeries::new(pts, style))?;
                if s.label.is_empty() {
                    continue;
                }
                drawn.legend(legend(colour, width))
            }
            Mark::Dashed => {
                let drawn =
                    chart.draw_series(DashedLineSeries::new(pts, 8, 5, colour.stroke_width(2)))?;
                if s.label.is_empty() {
                    continue;
                }
                drawn.legend(legend(colour, 2))
            }
            Mark::Dots => {
                let drawn =
                    chart.draw_series(pts.iter().map(|&q| Circle::new(q, 5, colour.filled())))?;
                if s.label.is_empty() {
                    continue;
                }
                drawn.legend(move |(x, y)| Circle::new((x + 9, y), 5, colour.filled()))
            }
        };
        drawn.label(s.label.as_str());
    }
    if p.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(if p.legend_top {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        for (v, want) in [
            (5.0, "5"),
            (0.25, "0.25"),
            (97.5, "97.5"),
            (1.0 / 3.0, "0.3333"),
            (2e-5, "2.0e-5"),
        ] {
            assert_eq!(tick(&v), want, "{v}");
        }
    }

    #[test]
    fn axis_ranges_are_never_empty() {
        for (vals, log, zero) in [
            (vec![3.0], false, false),
            (vec![3.0], true, false),
            (vec![0.5, 0.5], false, true),
            (vec![-2.0, 7.0], false, true),
        ] {
            let r = axis_range(vals.iter().copied(), log, zero);
            assert!(r.start < r.end, "{vals:?} log {log}: {r:?}");
            assert!(vals.iter().all(|v| r.contains(v)), "{vals:?}: {r:?}");
        }
    }
}
