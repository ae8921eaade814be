//! `chart --input FILE --output FILE.svg [--title TEXT]`: draws `cargo xtask bench`'s sweep as
//! an SVG chart.
//!
//! Input: one line per measurement, space-separated `key=value` pairs, of which `server`,
//! `connections`, `msgs_per_sec` and `p99_us` are used and every other word is ignored (so a
//! loadgen `result` line with `server=NAME` added will do). Blank lines and lines starting with
//! `#` are skipped. Several lines for the same server and connection count are reduced to their
//! median.
//!
//! Output: two panels side by side, throughput (msgs/s) and p99 latency (µs) against the
//! connection count, the count on a log2 axis with ticks at 1, 8, 64, 512 (and on by powers of
//! 8 if the data goes further), one line with points per server, and a legend.
//!
//! The text goes through plotters' SVG backend, which writes `<text>` elements and leaves the
//! glyphs to whoever views the file: with neither `ttf` nor `ab_glyph` enabled, plotters sizes
//! text with a built-in estimate (its `naive` font) instead of reading font files, which is
//! all an SVG needs. No font is loaded, so the chart draws the same on any machine.

#![forbid(unsafe_code)]

use clap::Parser;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Draws the bench's connection sweep (msgs/s and p99 latency per server) as an SVG chart.
#[derive(Debug, Parser)]
#[command(name = "chart", version)]
struct Cli {
    /// Lines of `server=NAME connections=N msgs_per_sec=X p99_us=Y` (other keys ignored).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,

    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    output: PathBuf,

    /// The chart's title.
    #[arg(long, value_name = "TEXT", default_value = "Ping-pong, 64-byte lines")]
    title: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let text = match std::fs::read_to_string(&cli.input) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", cli.input.display());
            return ExitCode::FAILURE;
        }
    };
    let series = match parse(&text) {
        Ok(series) => series,
        Err(error) => {
            eprintln!("error: {}: {error}", cli.input.display());
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = draw(&series, &cli.title, &cli.output) {
        eprintln!("error: cannot draw {}: {error}", cli.output.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    connections: u64,
    msgs_per_sec: f64,
    p99_us: f64,
}

/// One server's points, by connection count.
#[derive(Clone, Debug, PartialEq)]
struct Series {
    server: String,
    points: Vec<Point>,
}

/// A line of the input that cannot be used, with its line number.
#[derive(Debug, PartialEq)]
struct ParseError {
    line: usize,
    message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Reads the input into one series per server, in the order the servers first appear, points
/// sorted by connection count, repeated measurements reduced to their median.
fn parse(text: &str) -> Result<Vec<Series>, ParseError> {
    // Server order as first seen, so the bench decides the legend's order.
    let mut order: Vec<String> = Vec::new();
    let mut samples: BTreeMap<(usize, u64), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line_no = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |message: String| ParseError {
            line: line_no,
            message,
        };
        let mut server = None;
        let mut connections = None;
        let mut msgs_per_sec = None;
        let mut p99_us = None;
        for (key, value) in line
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
        {
            match key {
                "server" => server = Some(value),
                "connections" => {
                    let n = value
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| error(format!("bad connections={value}")))?;
                    connections = Some(n);
                }
                "msgs_per_sec" => msgs_per_sec = Some(number_value(key, value).map_err(error)?),
                "p99_us" => p99_us = Some(number_value(key, value).map_err(error)?),
                _ => {}
            }
        }
        let missing = |key: &str| error(format!("no {key}= in {line:?}"));
        let server = server
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("server"))?;
        let connections = connections.ok_or_else(|| missing("connections"))?;
        let msgs_per_sec = msgs_per_sec.ok_or_else(|| missing("msgs_per_sec"))?;
        let p99_us = p99_us.ok_or_else(|| missing("p99_us"))?;
        let index = match order.iter().position(|known| known == server) {
            Some(index) => index,
            None => {
                order.push(server.to_owned());
                order.len() - 1
            }
        };
        let (rates, latencies) = samples.entry((index, connections)).or_default();
        rates.push(msgs_per_sec);
        latencies.push(p99_us);
    }
    if order.is_empty() {
        return Err(ParseError {
            line: 0,
            message: "no measurements".to_owned(),
        });
    }
    let mut series: Vec<Series> = order
        .into_iter()
        .map(|server| Series {
            server,
            points: Vec::new(),
        })
        .collect();
    // The map is ordered by (server, connections): points come out sorted.
    for ((index, connections), (mut rates, mut latencies)) in samples {
        series[index].points.push(Point {
            connections,
            msgs_per_sec: median(&mut rates),
            p99_us: median(&mut latencies),
        });
    }
    Ok(series)
}

/// A measured value: a finite number, not negative.
fn number_value(key: &str, value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("bad {key}={value}"))
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Line colours, one per server in order (the first three are ours, tokio, epoll in the bench),
/// chosen to stay apart for colour-blind readers.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Writes the two-panel chart of `series` to `output`.
fn draw(series: &[Series], title: &str, output: &Path) -> DrawResult<()> {
    let root = SVGBackend::new(output, (1280, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 26))?;
    let (left, right) = root.split_horizontally(640);
    panel(
        &left,
        series,
        "Throughput",
        "msgs/s",
        |point| point.msgs_per_sec,
        Scale::Linear,
    )?;
    panel(
        &right,
        series,
        "p99 latency",
        "p99 (µs)",
        |point| point.p99_us,
        Scale::Log,
    )?;
    root.present()?;
    Ok(())
}

/// How a panel's y axis is scaled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// From 0: throughputs are compared as amounts.
    Linear,
    /// Log10: latencies span orders of magnitude across the sweep, and a linear axis would
    /// flatten the small counts to the floor.
    Log,
}

/// One panel: `value` of every point against its connection count, per server.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    series: &[Series],
    caption: &str,
    y_desc: &str,
    value: impl Fn(&Point) -> f64,
    scale: Scale,
) -> DrawResult<()> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.connections).max().unwrap_or(1).max(512);
    let x_ticks: Vec<f64> = std::iter::successors(Some(1u64), |&n| n.checked_mul(8))
        .take_while(|&n| n <= x_max)
        .map(|n| n as f64)
        .collect();
    // A little room on both sides, so the first and last points are not on the frame.
    let x_range = (0.8..x_max as f64 * 1.25)
        .log_scale()
        .base(2.0)
        .with_key_points(x_ticks);
    let y_max = points().map(&value).fold(0.0, f64::max);
    let y_min = points().map(&value).fold(f64::INFINITY, f64::min);

    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(76);
    match scale {
        Scale::Linear => {
            let top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
            let chart = builder.build_cartesian_2d(x_range, 0.0..top)?;
            plot(chart, series, y_desc, |point| value(point))
        }
        Scale::Log => {
            // Log axes cannot show 0: a 0 µs p99 (only in synthetic input) is drawn at the floor.
            let floor = if y_min.is_finite() && y_min > 0.0 {
                y_min / 1.5
            } else {
                1.0
            };
            let top = (y_max * 1.5).max(floor * 10.0);
            let chart = builder.build_cartesian_2d(x_range, (floor..top).log_scale())?;
            plot(chart, series, y_desc, |point| value(point).max(floor))
        }
    }
}

/// Draws the grid, the axes, one line with points per server, and the legend.
fn plot<'a, X, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
    y_desc: &str,
    value: impl Fn(&Point) -> f64,
) -> DrawResult<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_desc)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| si(*y))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line = s.points.iter().map(|p| (p.connections as f64, value(p)));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)).point_size(4))?
            .label(&s.server)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

/// A tick label: `950`, `12k`, `1.5M`.
fn si(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        trim(format!("{:.1}", value / 1e6)) + "M"
    } else if magnitude >= 1e3 {
        trim(format!("{:.1}", value / 1e3)) + "k"
    } else {
        trim(format!("{value:.1}"))
    }
}

/// `12.0` -> `12`, `1.5` stays.
fn trim(number: String) -> String {
    match number.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = "\
# a comment
server=ours connections=1 msgs_per_sec=20000.0 p99_us=80.0 extra=ignored
result server=tokio connections=1 msgs_per_sec=15000 p99_us=95
server=ours connections=8 msgs_per_sec=90000 p99_us=150
server=tokio connections=8 msgs_per_sec=60000 p99_us=210

server=epoll connections=512 msgs_per_sec=130000 p99_us=9000
server=ours connections=64 msgs_per_sec=140000 p99_us=900
server=ours connections=512 msgs_per_sec=150000 p99_us=7000
server=ours connections=512 msgs_per_sec=170000 p99_us=5000
server=ours connections=512 msgs_per_sec=160000 p99_us=6000
";

    #[test]
    fn the_sweep_parses_into_sorted_series_with_medians() {
        let series = parse(SWEEP).unwrap();
        let names: Vec<&str> = series.iter().map(|s| s.server.as_str()).collect();
        assert_eq!(names, ["ours", "tokio", "epoll"]);
        let ours: Vec<(u64, f64, f64)> = series[0]
            .points
            .iter()
            .map(|p| (p.connections, p.msgs_per_sec, p.p99_us))
            .collect();
        assert_eq!(
            ours,
            [
                (1, 20000.0, 80.0),
                (8, 90000.0, 150.0),
                (64, 140000.0, 900.0),
                (512, 160000.0, 6000.0)
            ]
        );
        assert_eq!(series[2].points.len(), 1);
    }

    #[test]
    fn bad_lines_are_errors_that_name_the_line() {
        for (text, line, needle) in [
            ("server=a connections=1 msgs_per_sec=1\n", 1, "p99_us"),
            ("\nconnections=1 msgs_per_sec=1 p99_us=1\n", 2, "server"),
            (
                "server=a connections=0 msgs_per_sec=1 p99_us=1\n",
                1,
                "connections=0",
            ),
            (
                "server=a connections=1 msgs_per_sec=x p99_us=1\n",
                1,
                "msgs_per_sec=x",
            ),
            (
                "server=a connections=1 msgs_per_sec=1 p99_us=NaN\n",
                1,
                "p99_us=NaN",
            ),
            ("# nothing\n\n", 0, "no measurements"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.to_string().contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn medians_and_tick_labels() {
        assert_eq!(median(&mut [3.0]), 3.0);
        assert_eq!(median(&mut [4.0, 1.0]), 2.5);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_000.0), "12k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(0.0), "0");
    }

    #[test]
    fn a_small_sweep_renders_to_an_svg_with_its_series_names_and_axis_labels() {
        let dir = std::env::temp_dir().join(format!("chart-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let output = dir.join("chart.svg");
        let series = parse(SWEEP).unwrap();
        draw(&series, "Sweep <test> & more", &output).unwrap();
        let svg = std::fs::read_to_string(&output).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        // The legend names every server, in both panels.
        for name in ["ours", "tokio", "epoll"] {
            let label = format!(">\n{name}\n</text>");
            assert_eq!(svg.matches(&label).count(), 2, "legend entry {name}");
        }
        // Titles, axis descriptions and the x ticks at 1, 8, 64, 512 are real text.
        for text in [
            "Sweep &lt;test&gt; &amp; more",
            "Throughput",
            "p99 latency",
            "connections",
            "msgs/s",
            "p99 (µs)",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        for tick in ["1", "8", "64", "512"] {
            let label = format!(">\n{tick}\n</text>");
            assert!(svg.matches(&label).count() >= 2, "x tick {tick}");
        }
        // One line per server per panel.
        assert!(svg.matches("<polyline").count() >= 6);
    }
}
