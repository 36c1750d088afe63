//! Plots (SVG) and a markdown table from the comparison runner's JSON lines.
//!
//! ```text
//! cargo run -p errand-benches --bin plots -- bench-results/compare.jsonl benches/plots/
//! cargo run -p errand-benches --bin plots -- --table bench-results/compare.jsonl
//! ```
//!
//! The first form writes, for the cases present in the file:
//!
//! - `throughput_vs_queue_depth.svg`: drain rate against queue depth, one line per adapter
//!   (`scaling_queue_depth_*`);
//! - `dispatch_latency.svg`: idle dispatch latency p50 and p99 per adapter, errand beside
//!   its baseline (`dispatch_latency_*`);
//! - `throughput.svg`: no-op throughput per adapter beside its baseline
//!   (`noop_throughput_*`, the bare thread pool included);
//! - `priority_under_backlog.svg`: start latency (p99) of a CRITICAL and of a NORMAL task
//!   behind a 100k backlog, log scale (`priority_latency_under_backlog*`);
//! - `allocations_per_task.svg` and `memory_per_queued_task.svg`.
//!
//! The second prints every line as a row of a markdown table.

use std::error::Error;
use std::path::Path;

use errand_benches::report::{Line, Unit};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The adapters, as case names spell them (tokio's cases carry no suffix).
const ADAPTERS: [&str; 3] = ["tokio", "smol", "threads"];

const ERRAND: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const BASELINE: RGBColor = RGBColor(0x75, 0x70, 0xb3);
const ADAPTER_COLORS: [RGBColor; 3] = [
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, input] if flag == "--table" => {
            print!("{}", table(&read(input)?));
            Ok(())
        }
        [input, dir] => {
            let lines = read(input)?;
            std::fs::create_dir_all(dir)?;
            for written in plot_all(&lines, Path::new(dir))? {
                eprintln!("wrote {}", written.display());
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: plots FILE.jsonl OUT_DIR | plots --table FILE.jsonl");
            std::process::exit(2);
        }
    }
}

fn read(path: &str) -> Result<Vec<Line>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(Line::parse_all(&text).map_err(|e| format!("{path}: {e}"))?)
}

/// The case name of `base` on `adapter`: `base` for tokio, `base_<adapter>` otherwise.
fn on(base: &str, adapter: &str) -> String {
    if adapter == "tokio" {
        base.to_owned()
    } else {
        format!("{base}_{adapter}")
    }
}

fn find<'a>(lines: &'a [Line], case: &str) -> Option<&'a Line> {
    lines.iter().find(|line| line.case == case)
}

/// Every plot whose cases are present; the files written.
fn plot_all(lines: &[Line], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    let depth = dir.join("throughput_vs_queue_depth.svg");
    if depth_plot(lines, &depth)? {
        written.push(depth);
    }
    let mut emit = |name: &str, bars: Option<Bars>| -> Result<()> {
        if let Some(bars) = bars {
            let path = dir.join(name);
            bars.draw(&path)?;
            written.push(path);
        }
        Ok(())
    };

    let pairs = |base: &dyn Fn(&str) -> String, label: &dyn Fn(&Line, &str) -> String| {
        let mut groups = Vec::new();
        let (mut subject, mut baseline) = (Vec::new(), Vec::new());
        for adapter in ADAPTERS {
            if let Some(line) = find(lines, &base(adapter)) {
                groups.push(label(line, adapter));
                subject.push(line.subject_value);
                baseline.push(line.baseline_value);
            }
        }
        (groups, subject, baseline)
    };

    let (mut groups, mut s, mut b) = pairs(&|a| format!("noop_throughput_{a}"), &|line, a| {
        format!("{a} (vs {})", line.baseline)
    });
    if let Some(line) = find(lines, "noop_throughput_threads_bare") {
        groups.push("threads (vs a bare bounded channel pool)".into());
        s.push(line.subject_value);
        b.push(line.baseline_value);
    }
    emit(
        "throughput.svg",
        (!groups.is_empty()).then(|| Bars {
            title: "No-op throughput, 2 workers each (higher is better)".into(),
            y_desc: "million tasks/s".into(),
            groups,
            series: vec![
                ("errand".into(), ERRAND, scale(&s, 1e-6)),
                ("baseline".into(), BASELINE, scale(&b, 1e-6)),
            ],
            log: false,
        }),
    )?;

    let mut groups = Vec::new();
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for adapter in ADAPTERS {
        for p in ["p50", "p99"] {
            if let Some(line) = find(lines, &format!("dispatch_latency_{p}_{adapter}")) {
                groups.push(format!("{adapter} {p}"));
                s.push(line.subject_value);
                b.push(line.baseline_value);
            }
        }
    }
    emit(
        "dispatch_latency.svg",
        (!groups.is_empty()).then(|| Bars {
            title: "Idle dispatch latency, submit to first line (lower is better)".into(),
            y_desc: "µs".into(),
            groups,
            series: vec![
                ("errand".into(), ERRAND, scale(&s, 1e-3)),
                ("baseline runtime's spawn".into(), BASELINE, scale(&b, 1e-3)),
            ],
            log: false,
        }),
    )?;

    let (groups, s, b) = pairs(&|a| on("priority_latency_under_backlog", a), &|_, a| {
        a.to_owned()
    });
    emit(
        "priority_under_backlog.svg",
        (!groups.is_empty()).then(|| Bars {
            title: "Start latency p99 behind 100k queued NORMAL tasks (log scale)".into(),
            y_desc: "µs".into(),
            groups,
            series: vec![
                ("CRITICAL".into(), ERRAND, scale(&s, 1e-3)),
                ("NORMAL (FIFO)".into(), BASELINE, scale(&b, 1e-3)),
            ],
            log: true,
        }),
    )?;

    let (groups, s, b) = pairs(&|a| on("allocations_per_task", a), &|line, a| {
        format!("{a} (vs {})", line.baseline)
    });
    emit(
        "allocations_per_task.svg",
        (!groups.is_empty()).then(|| Bars {
            title: "Heap allocations per no-op task, submit to complete (lower is better)".into(),
            y_desc: "allocations".into(),
            groups,
            series: vec![
                ("errand".into(), ERRAND, s),
                ("baseline".into(), BASELINE, b),
            ],
            log: false,
        }),
    )?;

    let mut groups = Vec::new();
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for (case, label) in [
        ("memory_per_queued_task", "all-in (reserved slots included)"),
        ("memory_per_queued_task_marginal", "per submit"),
    ] {
        if let Some(line) = find(lines, case) {
            groups.push(label.to_owned());
            s.push(line.subject_value);
            b.push(line.baseline_value);
        }
    }
    emit(
        "memory_per_queued_task.svg",
        (!groups.is_empty()).then(|| Bars {
            title: "Heap bytes per queued task, errand-tokio vs tokio task parked".into(),
            y_desc: "bytes".into(),
            groups,
            series: vec![
                ("errand-tokio".into(), ERRAND, s),
                ("tokio task parked".into(), BASELINE, b),
            ],
            log: false,
        }),
    )?;
    Ok(written)
}

fn scale(values: &[f64], by: f64) -> Vec<f64> {
    values.iter().map(|v| v * by).collect()
}

/// Drain rate against queue depth, one line per adapter; whether there was any data.
fn depth_plot(lines: &[Line], path: &Path) -> Result<bool> {
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for adapter in ADAPTERS {
        let mut points: Vec<(f64, f64)> = lines
            .iter()
            .filter_map(|line| {
                let rest = line.case.strip_prefix("scaling_queue_depth_")?;
                let (depth, on) = rest.split_once('_').unwrap_or((rest, "tokio"));
                (on == adapter).then_some(())?;
                let depth: f64 = depth.parse().ok()?;
                Some((depth.log10(), line.subject_value / 1e6))
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push((adapter, points));
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let all = series.iter().flat_map(|(_, points)| points.iter());
    let (x0, x1, y1) = all.fold((f64::MAX, f64::MIN, 0.0_f64), |(x0, x1, y1), &(x, y)| {
        (x0.min(x), x1.max(x), y1.max(y))
    });
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Drain rate vs queue depth, 2 workers (flat is good)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - 0.25)..(x1 + 0.25), 0.0..(y1 * 1.2))?;
    let depth_label = |x: &f64| {
        if (x - x.round()).abs() > 0.01 {
            return String::new();
        }
        match x.round() as i32 {
            3 => "1k".into(),
            4 => "10k".into(),
            5 => "100k".into(),
            6 => "1M".into(),
            e => format!("1e{e}"),
        }
    };
    chart
        .configure_mesh()
        .x_desc("tasks queued (log scale)")
        .y_desc("million tasks/s")
        .x_labels(((x1 - x0) as usize + 1) * 4)
        .x_label_formatter(&depth_label)
        .draw()?;
    for (i, (adapter, points)) in series.iter().enumerate() {
        let color = ADAPTER_COLORS[i % ADAPTER_COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(format!("errand-{adapter}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

/// A grouped bar chart: one group per label, one bar per series in each.
struct Bars {
    title: String,
    y_desc: String,
    groups: Vec<String>,
    /// (legend label, color, one value per group).
    series: Vec<(String, RGBColor, Vec<f64>)>,
    /// A log10 value axis.
    log: bool,
}

impl Bars {
    fn draw(&self, path: &Path) -> Result<()> {
        let values = self.series.iter().flat_map(|(_, _, v)| v.iter().copied());
        let (min, max) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (y0, y1) = if self.log {
            let lo = min.max(f64::MIN_POSITIVE).log10().floor();
            // A decade of headroom: the legend sits above the tallest bar.
            (lo, max.log10().ceil() + 1.0)
        } else {
            (0.0, max * 1.4)
        };
        let y = |v: f64| if self.log { v.log10() } else { v };
        let n = self.groups.len();
        let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), y0..y1)?;
        let groups = &self.groups;
        let group_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            groups.get(i as usize).cloned().unwrap_or_default()
        };
        let log = self.log;
        let value_label = |v: &f64| {
            if log {
                let value = 10_f64.powf(*v);
                if (v - v.round()).abs() > 0.01 {
                    String::new()
                } else if value >= 1.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value}")
                }
            } else {
                format!("{v:.2}")
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 4)
            .x_label_formatter(&group_label)
            .y_labels(if log {
                ((y1 - y0) as usize + 1) * 3
            } else {
                10
            })
            .y_label_formatter(&value_label)
            .y_desc(self.y_desc.as_str())
            .draw()?;
        let width = 0.8 / self.series.len() as f64;
        for (k, (label, color, values)) in self.series.iter().enumerate() {
            let color = *color;
            let left = |i: usize| i as f64 - 0.4 + k as f64 * width;
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    Rectangle::new(
                        [(left(i), y0), (left(i) + width * 0.92, y(v))],
                        color.filled(),
                    )
                }))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
                Text::new(
                    short_number(v),
                    (left(i) + width * 0.46, y(v)),
                    ("sans-serif", 13)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// A value with three significant digits, for bar labels.
fn short_number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A value in its unit, readable: `1.24 M/s`, `9.9 µs`, `610 B`, `3.01`.
fn human(value: f64, unit: Unit) -> String {
    match unit {
        Unit::TasksPerSecond if value >= 1e6 => format!("{:.2} M/s", value / 1e6),
        Unit::TasksPerSecond if value >= 1e4 => format!("{:.0} k/s", value / 1e3),
        Unit::TasksPerSecond if value >= 1e3 => format!("{:.1} k/s", value / 1e3),
        Unit::TasksPerSecond => format!("{value:.0} /s"),
        Unit::Nanoseconds if value >= 1e6 => format!("{:.1} ms", value / 1e6),
        Unit::Nanoseconds if value >= 1e3 => format!("{:.1} µs", value / 1e3),
        Unit::Nanoseconds => format!("{value:.0} ns"),
        Unit::Bytes if value >= 1e6 => format!("{:.1} MB", value / 1e6),
        Unit::Bytes => format!("{value:.0} B"),
        Unit::Allocations => format!("{value:.2}"),
        Unit::Count => format!("{value:.0}"),
    }
}

/// A ratio with three significant digits (`0.846`, `2.38`, `3.6e-4`).
fn ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 0.01 {
        format!(
            "{:.*}",
            if r >= 10.0 {
                1
            } else if r >= 1.0 {
                2
            } else {
                3
            },
            r
        )
    } else {
        format!("{r:.1e}")
    }
}

/// Every line as a row of a markdown table.
fn table(lines: &[Line]) -> String {
    let mut out = String::from(
        "| case | subject | baseline | subject value | baseline value | ratio | better is |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for line in lines {
        out += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            line.case,
            line.subject,
            line.baseline,
            human(line.subject_value, line.unit),
            human(line.baseline_value, line.unit),
            line.ratio.map_or("–".into(), ratio),
            if line.higher_is_better {
                "higher"
            } else {
                "lower"
            }
        );
    }
    out
}
