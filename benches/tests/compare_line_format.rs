//! The comparison runner's output format: every line is one JSON object with exactly the
//! documented fields, it round-trips through `Line`, and the runner binary itself prints
//! such lines (one cheap case, run for real; its figures are not checked).

use std::process::Command;

use errand_benches::report::{Line, Unit};
use serde_json::Value;

const FIELDS: [&str; 8] = [
    "case",
    "subject",
    "baseline",
    "unit",
    "subject_value",
    "baseline_value",
    "ratio",
    "higher_is_better",
];

/// Checks that `text` is one JSON object with exactly [`FIELDS`], each of its type.
fn assert_well_formed(text: &str) -> Value {
    assert!(!text.contains('\n'), "one line: {text:?}");
    let value: Value = serde_json::from_str(text).expect("valid JSON");
    let object = value.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly the documented fields");
    for key in ["case", "subject", "baseline"] {
        assert!(
            !object[key].as_str().expect("a string").is_empty(),
            "{key} is set"
        );
    }
    assert!(["tasks/s", "ns", "bytes", "allocs"].contains(&object["unit"].as_str().expect("unit")));
    for key in ["subject_value", "baseline_value"] {
        assert!(object[key].as_f64().expect("a number").is_finite());
    }
    assert!(object["ratio"].is_null() || object["ratio"].is_f64());
    assert!(object["higher_is_better"].is_boolean());
    value
}

#[test]
fn a_line_has_every_field_and_round_trips() {
    let line = Line::new(
        "noop_throughput_tokio",
        "errand-tokio",
        "tokio::spawn",
        Unit::TasksPerSecond,
        1_234_567.5,
        987_654.25,
        true,
    );
    let text = line.to_json();
    let value = assert_well_formed(&text);
    assert_eq!(value["case"], "noop_throughput_tokio");
    assert_eq!(value["unit"], "tasks/s");
    assert_eq!(value["subject_value"], 1_234_567.5);
    assert_eq!(value["ratio"], 1_234_567.5 / 987_654.25);
    assert_eq!(value["higher_is_better"], true);
    assert_eq!(Line::parse(&text).expect("parses back"), line);
}

#[test]
fn every_unit_is_spelled_as_documented() {
    for (unit, text) in [
        (Unit::TasksPerSecond, "tasks/s"),
        (Unit::Nanoseconds, "ns"),
        (Unit::Bytes, "bytes"),
        (Unit::Allocations, "allocs"),
    ] {
        let line = Line::new("c", "s", "b", unit, 2.0, 4.0, false);
        let value = assert_well_formed(&line.to_json());
        assert_eq!(value["unit"], text);
        assert_eq!(unit.as_str(), text);
        assert_eq!(value["ratio"], 0.5);
    }
}

#[test]
fn malformed_lines_are_refused() {
    let good = Line::new("c", "s", "b", Unit::Bytes, 1.0, 2.0, false).to_json();
    let mut missing: Value = serde_json::from_str(&good).unwrap();
    missing.as_object_mut().unwrap().remove("baseline_value");
    assert!(Line::parse(&missing.to_string()).is_err());
    let bad_unit = good.replace("\"bytes\"", "\"furlongs\"");
    assert!(Line::parse(&bad_unit).is_err());
    let extra = good.replace("{", "{\"note\":\"x\",");
    assert!(Line::parse(&extra).is_err());

    let file = format!("{good}\n\n{good}\n");
    assert_eq!(Line::parse_all(&file).unwrap().len(), 2);
    let err = Line::parse_all(&format!("{good}\nnot json\n")).unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
}

#[test]
fn the_runner_prints_such_lines() {
    let out = std::env::temp_dir().join(format!("errand-compare-{}.jsonl", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(["--quick", "--case", "allocations_per_task_threads", "--out"])
        .arg(&out)
        .output()
        .expect("the runner starts");
    assert!(
        output.status.success(),
        "runner failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly the one case asked for: {stdout}");
    assert_well_formed(lines[0]);
    let line = Line::parse(lines[0]).expect("parses");
    assert_eq!(line.case, "allocations_per_task_threads");
    assert_eq!(line.unit, Unit::Allocations);
    assert!(!line.higher_is_better);
    let written = std::fs::read_to_string(&out).expect("the --out file");
    std::fs::remove_file(&out).ok();
    assert_eq!(
        written,
        format!("{}\n", lines[0]),
        "--out holds the same line"
    );
}
