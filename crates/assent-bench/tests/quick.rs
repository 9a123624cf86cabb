//! The bench's quick mode as CI runs it: against the debug `assent` that `cargo test
//! --workspace` builds, it must finish with every invariant held. It asserts no speed.

use std::path::PathBuf;
use std::process::Command;

/// `<target>/debug/assent`: this test runs from `<target>/debug/deps/`.
fn debug_assent() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test knows its path");
    let deps = test_exe.parent().expect("the test lives in deps/");
    let assent = deps.parent().expect("deps/ lives in the profile directory").join("assent");
    assert!(
        assent.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p assent`) first",
        assent.display()
    );
    assent
}

fn quick(extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_assent-bench"))
        .arg("--quick")
        .arg("--json")
        .arg("--assent-bin")
        .arg(debug_assent())
        .args(extra)
        .output()
        .expect("assent-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "assent-bench --quick failed:\n{stderr}");

    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line per run")).collect();
    let runs: Vec<&str> = lines.iter().filter_map(|l| l["run"].as_str()).collect();
    let expected = [
        "dispatch",
        "replay",
        "race",
        "flow",
        "webhook-rate",
        "decision-latency",
        "parked",
        "decide-idle",
        "dispatch-max",
        "dispatch-half",
        "decide-half",
        "deadlines",
        "deadline-burst",
    ];
    assert_eq!(runs, expected, "{stdout}");
    assert!(lines.iter().all(|l| l["invariants"] == "held" && l["operations"].as_u64() > Some(0)));
    let parked = &lines.iter().find(|l| l["run"] == "parked").expect("a parked row")["figures"];
    for figure in ["storeMiB", "idleRssMiB", "readyAfterKillMs", "restartedIdleRssMiB"] {
        assert!(parked[figure].as_f64() > Some(0.0), "parked figure {figure}: {parked}");
    }
}

#[test]
fn quick_mode_holds_every_invariant_on_sqlite() {
    quick(&[]);
}

#[test]
fn quick_mode_holds_every_invariant_on_postgres() {
    let Ok(url) = std::env::var("ASSENT_TEST_POSTGRES_URL") else {
        eprintln!("skipped: ASSENT_TEST_POSTGRES_URL is not set");
        return;
    };
    quick(&["--postgres", &url]);
}
