//! An existing client, unchanged but for its base URL: the velt-py SDK's WorkflowService.
//! Runs when Python can import `velt_py` (CI installs it); says it was skipped otherwise.

mod common;

use common::spawn_app;
use std::process::Command;

fn python_has_velt_py() -> bool {
    let probe = Command::new("python3").args(["-c", "import velt_py"]).output();
    probe.is_ok_and(|out| out.status.success())
}

#[tokio::test]
async fn velt_py_manages_definitions() {
    run_script("velt_py_definitions.py", "velt-py definitions: ok").await;
}

#[tokio::test]
async fn velt_py_drives_an_execution() {
    run_script("velt_py_executions.py", "velt-py executions: ok").await;
}

/// Runs one of the scripts in `tests/clients` against a fresh server.
async fn run_script(name: &str, success_line: &str) {
    if !python_has_velt_py() {
        eprintln!("skipped: python3 cannot import velt_py (pip install velt-py==0.3.0)");
        return;
    }
    let app = spawn_app().await;
    let dir = env!("CARGO_MANIFEST_DIR");
    let script = format!("{dir}/tests/clients/{name}");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .env("ASSENT_BASE_URL", &app.base_url)
        .env("ASSENT_API_KEY", &app.creds.api_key)
        .env("ASSENT_AUTH_TOKEN", &app.creds.auth_token)
        .env("ASSENT_EXAMPLES", format!("{dir}/../../examples"))
        .output()
        .await
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&run.stdout) + String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "velt-py script failed: {said}");
    assert!(said.contains(success_line), "{said}");
}
