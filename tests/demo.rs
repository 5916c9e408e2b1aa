//! The README's main command, as a user runs it: `scripts/run.sh --check` builds the filter,
//! starts the demo gateway, sends the demo requests, checks the answers and stops Envoy; and
//! `scripts/run.sh` as a newcomer sees it in a terminal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::ports::free_fixed_ports;

use std::process::Command;
use std::time::{Duration, Instant};

/// scripts/run.sh renders one `.tmp/demo.yaml` (and --check one `.tmp/demo-envoy.log`): one
/// demo at a time.
static ONE_DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_gateway_serves_the_split_stickiness_select_auth_and_metrics() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let p = free_fixed_ports(5);
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .arg("--check")
        .env("PORT", p[0].to_string())
        .env("MODEL_V1_PORT", p[1].to_string())
        .env("MODEL_V2_PORT", p[2].to_string())
        .env("MODEL_V3_PORT", p[3].to_string())
        .env("ADMIN_PORT", p[4].to_string())
        .output()
        .expect("scripts/run.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/run.sh --check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "ok:   sticky: user-42 always got",
        "ok:   select: model-v3 answered",
        "ok:   auth: no key -> 401",
        "demo check passed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
}

/// `scripts/run.sh` as a newcomer meets it, in its own process group (killed on drop, Envoy
/// included), its stdout and stderr interleaved as a terminal shows them.
struct Demo {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(p: &[u16]) -> Demo {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("bash")
            .args(["-c", "exec \"$0\" 2>&1"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
            .env("PORT", p[0].to_string())
            .env("MODEL_V1_PORT", p[1].to_string())
            .env("MODEL_V2_PORT", p[2].to_string())
            .env("MODEL_V3_PORT", p[3].to_string())
            .env("ADMIN_PORT", p[4].to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("scripts/run.sh runs");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle` (bounded); returns whether it came.
    fn read_until(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn the_interactive_demo_shows_the_filters_lines_then_the_suggestions_once_ready() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let p = free_fixed_ports(5);
    let admin = format!("http://127.0.0.1:{}/ready", p[4]);
    let mut demo = Demo::start(&p);
    // The build is already done by scripts/test.sh; allow for a slow machine anyway.
    assert!(
        demo.read_until("Envoy is ready", Duration::from_secs(300)),
        "no ready line:\n{}",
        demo.output()
    );
    // The suggestions come once Envoy answers, and Envoy still does.
    let ready = ureq::get(&admin).call().map(|r| r.status()).unwrap_or(0);
    assert_eq!(ready, 200, "{}", demo.output());
    let out = demo.output();
    let suggestions = out.find("Keys: alice-key").expect("the suggestions");
    let configured = out
        .find("canary-gate configured")
        .unwrap_or_else(|| panic!("the filter's own lines are missing:\n{out}"));
    assert!(
        configured < suggestions,
        "the suggestions come before Envoy is configured:\n{out}"
    );
    // Of Envoy's lines, only the filter's (the wasm component) and warnings or worse: no
    // extension list pushing the suggestions off the screen.
    let envoy_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("[20")).collect();
    assert!(!envoy_lines.is_empty(), "{out}");
    for line in &envoy_lines {
        let filters = line.contains("][wasm]") && line.contains("canary-gate");
        let serious = ["][warning][", "][error][", "][critical]["]
            .iter()
            .any(|level| line.contains(level));
        assert!(
            filters || serious,
            "a line the demo should not show: {line}"
        );
    }
    assert!(
        out.lines().count() < 60,
        "too much before the prompt:\n{out}"
    );

    // Ctrl-C (here SIGINT to the process group, as a terminal sends it) stops Envoy and the script.
    let group = format!("-{}", demo.child.id());
    Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while demo.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "run.sh did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ureq::get(&admin).call().is_err(), "Envoy still answers");
}
