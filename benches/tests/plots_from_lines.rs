//! The plots binary draws its SVGs from a JSON-lines file, and prints the markdown table.

use std::process::Command;

use errand_benches::report::{Line, Unit};

fn fixture() -> String {
    let mut lines = Vec::new();
    for (adapter, suffix) in [("tokio", ""), ("smol", "_smol"), ("threads", "_threads")] {
        let subject = format!("errand-{adapter}");
        lines.push(Line::new(
            format!("noop_throughput_{adapter}"),
            &subject,
            "base",
            Unit::TasksPerSecond,
            1.0e6,
            2.0e6,
            true,
        ));
        for p in ["p50", "p99"] {
            lines.push(Line::new(
                format!("dispatch_latency_{p}_{adapter}"),
                &subject,
                "base",
                Unit::Nanoseconds,
                9_000.0,
                6_000.0,
                false,
            ));
        }
        lines.push(Line::new(
            format!("priority_latency_under_backlog{suffix}"),
            &subject,
            "base",
            Unit::Nanoseconds,
            20_000.0,
            5.0e7,
            false,
        ));
        lines.push(Line::new(
            format!("allocations_per_task{suffix}"),
            &subject,
            "base",
            Unit::Allocations,
            3.0,
            1.0,
            false,
        ));
        for depth in [1_000, 10_000, 100_000] {
            lines.push(Line::new(
                format!("scaling_queue_depth_{depth}{suffix}"),
                &subject,
                "base",
                Unit::TasksPerSecond,
                1.0e6 - depth as f64,
                1.0e6,
                true,
            ));
        }
    }
    for case in ["memory_per_queued_task", "memory_per_queued_task_marginal"] {
        lines.push(Line::new(
            case,
            "errand",
            "tokio",
            Unit::Bytes,
            100.0,
            256.0,
            false,
        ));
    }
    lines.iter().map(|line| line.to_json() + "\n").collect()
}

#[test]
fn plots_and_table_come_from_the_lines() {
    let dir = std::env::temp_dir().join(format!("errand-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("compare.jsonl");
    std::fs::write(&input, fixture()).unwrap();
    let out = dir.join("plots");

    let status = Command::new(env!("CARGO_BIN_EXE_plots"))
        .arg(&input)
        .arg(&out)
        .status()
        .expect("plots starts");
    assert!(status.success());
    for (name, legend) in [
        ("throughput_vs_queue_depth.svg", "errand-threads"),
        ("dispatch_latency.svg", "errand"),
        ("throughput.svg", "baseline"),
        ("priority_under_backlog.svg", "CRITICAL"),
        ("allocations_per_task.svg", "errand"),
        ("memory_per_queued_task.svg", "tokio task parked"),
    ] {
        let svg = std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{name}");
        assert!(svg.contains(legend), "{name} has its legend");
    }

    let table = Command::new(env!("CARGO_BIN_EXE_plots"))
        .arg("--table")
        .arg(&input)
        .output()
        .expect("plots starts");
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    // A header, its rule, and one row per line.
    assert_eq!(table.lines().count(), 2 + fixture().lines().count());
    assert!(table.contains(
        "| `noop_throughput_smol` | errand-smol | base | 1.00 M/s | 2.00 M/s | 0.500 | higher |"
    ));
    std::fs::remove_dir_all(&dir).ok();
}
