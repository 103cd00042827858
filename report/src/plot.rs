//! Charts as SVG strings, drawn by `plotters`' SVG backend.
//!
//! A [`Chart`] says what to draw (series of points joined or not, with a marker each,
//! dashed threshold lines) and [`svg`] draws it. The reports only build charts; axes, ranges,
//! the grid and the in-chart legend are decided here once.
//!
//! No font is read: without `plotters`' `ttf` feature the SVG backend writes `<text>`
//! elements with a generic family (`sans-serif`) and estimates their width, so drawing works
//! on a machine with no fonts and the browser picks whatever sans-serif it has.

use plotters::prelude::*;
use std::fmt;

/// A colour as red, green, blue.
pub type Rgb = (u8, u8, u8);

/// Series colours: one per run (or per role), saturated and far from the greys and black of
/// axes, grid and text, so that a screenshot check can find each one's pixels.
pub const PALETTE: [Rgb; 8] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

/// The `i`th colour of [`PALETTE`], cycling.
pub fn color(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// `c` mixed with white: `f` 0 keeps it, 1 is white. Lighter shades of one run's colour tell
/// its levels apart while keeping the run recognisable.
pub fn shade(c: Rgb, f: f64) -> Rgb {
    let f = f.clamp(0.0, 1.0);
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * f).round() as u8;
    (mix(c.0), mix(c.1), mix(c.2))
}

/// `#rrggbb`, for CSS.
pub fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The mark drawn at each point of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    Circle,
    Triangle,
    Cross,
}

/// One set of points in one colour.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its entry in the chart's legend; `None`: not listed (the page's own legend names it).
    pub label: Option<String>,
    pub color: Rgb,
    pub points: Vec<(f64, f64)>,
    /// Join the points (in the order given) with a line.
    pub line: bool,
    pub marker: Marker,
    /// The marker's radius in pixels.
    pub size: u32,
}

impl Series {
    /// Points joined by a line, with `marker` at each.
    pub fn line(
        label: Option<String>,
        color: Rgb,
        points: Vec<(f64, f64)>,
        marker: Marker,
    ) -> Series {
        Series {
            label,
            color,
            points,
            line: true,
            marker,
            size: 3,
        }
    }

    /// Points alone (a scatter).
    pub fn points(
        label: Option<String>,
        color: Rgb,
        points: Vec<(f64, f64)>,
        marker: Marker,
        size: u32,
    ) -> Series {
        Series {
            label,
            color,
            points,
            line: false,
            marker,
            size,
        }
    }
}

/// A dashed line across the chart at one value (an SLO's threshold).
#[derive(Debug, Clone)]
pub struct Threshold {
    pub label: String,
    pub value: f64,
    pub color: Rgb,
}

/// What one plot shows.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Vertical lines at x values.
    pub x_lines: Vec<Threshold>,
    /// Horizontal lines at y values.
    pub y_lines: Vec<Threshold>,
}

/// Why a chart could not be drawn (plotters' error, as text).
#[derive(Debug, Clone, PartialEq)]
pub struct PlotError(pub String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot draw the chart: {}", self.0)
    }
}

impl std::error::Error for PlotError {}

/// The chart's size in pixels; the page scales it down on narrow screens.
const SIZE: (u32, u32) = (960, 420);

/// A range covering `values` (and 0, when `from_zero`), padded so no point sits on the frame.
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = (hi.abs() * 0.1).max(1.0);
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (if from_zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad)
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Draws `chart` as one `<svg>` element. Axes start at zero unless a value is negative
/// (latencies, loads, rates and costs are not); non-finite points are left out.
pub fn svg(chart: &Chart) -> Result<String, PlotError> {
    let err = |e: &dyn fmt::Display| PlotError(e.to_string());
    let finite = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let xs = chart
        .series
        .iter()
        .flat_map(finite)
        .map(|p| p.0)
        .chain(chart.x_lines.iter().map(|t| t.value));
    let ys = chart
        .series
        .iter()
        .flat_map(finite)
        .map(|p| p.1)
        .chain(chart.y_lines.iter().map(|t| t.value));
    let (x0, x1) = range(xs, true);
    let (y0, y1) = range(ys, true);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut cc = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        cc.configure_mesh()
            .x_desc(&chart.x_label)
            .y_desc(&chart.y_label)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        let mut labelled = false;
        // Thresholds: vertical lines at x values, then horizontal ones at y values.
        let thresholds = (chart.x_lines.iter())
            .map(|t| (t, [(t.value, y0), (t.value, y1)]))
            .chain(
                chart
                    .y_lines
                    .iter()
                    .map(|t| (t, [(x0, t.value), (x1, t.value)])),
            );
        for (t, ends) in thresholds {
            let style = rgb(t.color).stroke_width(2);
            cc.draw_series(DashedLineSeries::new(ends, 8, 5, style))
                .map_err(|e| err(&e))?
                .label(&t.label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
            labelled = true;
        }
        for s in &chart.series {
            let points = finite(s);
            let color = rgb(s.color);
            let stroke = color.stroke_width(2);
            let size = s.size as i32;
            let drawn = if s.line {
                cc.draw_series(LineSeries::new(points.clone(), stroke))
                    .map_err(|e| err(&e))?
            } else {
                cc.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(|e| err(&e))?
            };
            if let Some(label) = &s.label {
                let line = move |(x, y): (i32, i32)| {
                    EmptyElement::at((x, y)) + PathElement::new([(0, 0), (18, 0)], stroke)
                };
                let anno = drawn.label(label);
                match s.marker {
                    Marker::None => anno.legend(line),
                    Marker::Circle => {
                        anno.legend(move |c| line(c) + Circle::new((9, 0), 3, color.filled()))
                    }
                    Marker::Triangle => anno
                        .legend(move |c| line(c) + TriangleMarker::new((9, 0), 4, color.filled())),
                    Marker::Cross => anno.legend(move |c| line(c) + Cross::new((9, 0), 4, stroke)),
                };
                labelled = true;
            }
            match s.marker {
                Marker::None => {}
                Marker::Circle => {
                    cc.draw_series(points.iter().map(|&p| Circle::new(p, size, color.filled())))
                        .map_err(|e| err(&e))?;
                }
                Marker::Triangle => {
                    cc.draw_series(
                        points
                            .iter()
                            .map(|&p| TriangleMarker::new(p, size + 1, color.filled())),
                    )
                    .map_err(|e| err(&e))?;
                }
                Marker::Cross => {
                    cc.draw_series(points.iter().map(|&p| Cross::new(p, size + 1, stroke)))
                        .map_err(|e| err(&e))?;
                }
            }
        }
        if labelled {
            cc.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(190, 190, 190))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_one_svg_with_its_colours_and_escaped_labels() {
        let chart = Chart {
            title: "TTFT <p50>".into(),
            x_label: "users".into(),
            y_label: "ms".into(),
            series: vec![
                Series::line(
                    Some("a&b".into()),
                    color(0),
                    vec![(1.0, 2.0), (2.0, 3.0)],
                    Marker::Circle,
                ),
                Series::points(
                    None,
                    color(1),
                    vec![(1.5, f64::NAN), (1.5, 2.5)],
                    Marker::Cross,
                    3,
                ),
            ],
            y_lines: vec![Threshold {
                label: "SLO".into(),
                value: 4.0,
                color: (0, 0, 0),
            }],
            ..Default::default()
        };
        let s = svg(&chart).unwrap();
        assert_eq!(s.matches("<svg").count(), 1, "{s}");
        assert!(
            s.contains("TTFT &lt;p50&gt;") && s.contains("a&amp;b"),
            "{s}"
        );
        for c in [color(0), color(1)] {
            assert!(
                s.contains(&hex(c).to_uppercase()) || s.contains(&hex(c)),
                "{}",
                hex(c)
            );
        }
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn empty_and_flat_charts_still_draw() {
        assert!(svg(&Chart::default()).is_ok());
        let flat = Chart {
            series: vec![Series::line(
                None,
                color(2),
                vec![(3.0, 5.0)],
                Marker::Triangle,
            )],
            ..Default::default()
        };
        assert!(svg(&flat).is_ok());
        assert_eq!(range([5.0].into_iter(), false), (4.0, 6.0));
        assert_eq!(shade((0, 0, 0), 1.0), (255, 255, 255));
        assert_eq!(hex((255, 0, 16)), "#ff0010");
    }
}
