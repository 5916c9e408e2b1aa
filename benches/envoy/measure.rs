//! Starting, checking and measuring the Envoys: wrk, the proxy's counters and CPU time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::envoy::{Envoy, StartFailure};
use crate::rows::{proxy_bootstrap, Creds, Row, Wasm};

pub struct Knobs {
    pub rounds: u32,
    pub duration: u64,
    pub warmup: u64,
    pub connections: u32,
    pub proxy_cpu: usize,
    pub load_cpu: usize,
    pub pin: bool,
    pub profile_seconds: u64,
}

/// `taskset -c CPU PROGRAM` when pinning, else `PROGRAM`.
pub fn pinned(k: &Knobs, cpu: usize, program: &str) -> Command {
    if k.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command with stdout and stderr to `out`; kills it at the deadline.
pub fn run_until(mut cmd: Command, out: &Path, limit: Duration) -> Result<ExitStatus, String> {
    let file = fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} ran past {limit:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn wrk(k: &Knobs, row: &Row, port: u16, seconds: u64, measure: bool) -> Command {
    let mut c = pinned(k, k.load_cpu, "wrk");
    c.args([
        "-t1".to_owned(),
        format!("-c{}", k.connections),
        format!("-d{seconds}s"),
    ]);
    if measure {
        c.args(["--timeout", "2s", "--latency"]);
    }
    for h in &row.headers {
        c.arg("-H").arg(h);
    }
    c.args(&row.wrk_args);
    c.arg(format!("http://127.0.0.1:{port}{}", row.path));
    c
}

/// HTTP status of one `GET path` with these `name: value` headers; 0 if there is no answer.
pub fn status_of(port: u16, path: &str, headers: &[String]) -> u16 {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut req = agent.get(&format!("http://127.0.0.1:{port}{path}"));
    for h in headers {
        if let Some((name, value)) = h.split_once(": ") {
            req = req.set(name, value);
        }
    }
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(_) => 0,
    }
}

/// The proxy's counters: (completed, 2xx, v1 requests, v2 requests).
pub fn stats(envoy: &Envoy) -> (i64, i64, i64, i64) {
    let body = envoy.admin("/stats").map(|(_, b)| b).unwrap_or_default();
    let mut s = (0, 0, 0, 0);
    for line in body.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let v = value.trim().parse().unwrap_or(0);
        match name {
            "http.bench.downstream_rq_completed" => s.0 = v,
            "http.bench.downstream_rq_2xx" => s.1 = v,
            "cluster.v1.upstream_rq_total" => s.2 = v,
            "cluster.v2.upstream_rq_total" => s.3 = v,
            _ => {}
        }
    }
    s
}

/// Fields of `/proc/PID/stat` from field 3 (`state`) on: index i is field i + 3.
pub fn proc_stat(pid: &str) -> Vec<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(") ").map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// utime + stime of a process, in clock ticks.
pub fn proc_ticks(pid: u32) -> u64 {
    let f = proc_stat(&pid.to_string());
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// (utime, stime) of a process, in clock ticks.
pub fn proc_user_sys(pid: u32) -> (u64, u64) {
    let f = proc_stat(&pid.to_string());
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// cutime + cstime of this process: the CPU of the children it has waited for (wrk).
pub fn children_ticks() -> u64 {
    let f = proc_stat("self");
    f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
}

/// On-CPU time of all threads of a process, in ns (schedstat: finer than ticks).
pub fn proc_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// (busy, total) ticks of one CPU from /proc/stat.
pub fn cpu_ticks(cpu: usize) -> (u64, u64) {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu}");
    let Some(line) = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&name))
    else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, busy + at(3) + at(4))
}

pub fn rss_kb(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// wrk's "1.23ms" in µs.
pub fn to_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "ms" => n * 1000.0,
        "s" => n * 1_000_000.0,
        _ => n,
    })
}

pub struct WrkResult {
    pub rps: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub non2xx: u64,
    pub socket_errors: u64,
}

pub fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult {
        rps: None,
        p50_us: None,
        p99_us: None,
        non2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().ok(),
            ["50%", v] => r.p50_us = to_us(v),
            ["99%", v] => r.p99_us = to_us(v),
            _ if line.contains("Non-2xx or 3xx responses:") => {
                r.non2xx = words.last().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            _ if line.contains("Socket errors:") => {
                r.socket_errors = words
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    r
}

/// One round of one variant.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub round: u32,
    pub variant: String,
    pub rps: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub non2xx: i64,
    pub wrk_non2xx: u64,
    pub socket_errors: u64,
    pub v2_share: Option<f64>,
    pub proxy_cpu: Option<f64>,
    pub proxy_cpu_us_per_req: Option<f64>,
    pub foreign_proxy_core: Option<f64>,
    pub load_core_busy: Option<f64>,
    pub foreign_load_core: Option<f64>,
    pub rss_kb: Option<f64>,
    pub note: String,
}

pub const RUNS_HEADER: &str = "round\tvariant\trps\tp50_us\tp99_us\tnon2xx\twrk_non2xx_3xx\tsocket_errors\tv2_share\tproxy_cpu\tproxy_cpu_us_per_req\tforeign_proxy_core\tload_core_busy\tforeign_load_core\trss_kb\tnote";

impl Run {
    pub fn tsv(&self) -> String {
        let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.round,
            self.variant,
            o(self.rps),
            o(self.p50_us),
            o(self.p99_us),
            self.non2xx,
            self.wrk_non2xx,
            self.socket_errors,
            o(self.v2_share),
            o(self.proxy_cpu),
            o(self.proxy_cpu_us_per_req),
            o(self.foreign_proxy_core),
            o(self.load_core_busy),
            o(self.foreign_load_core),
            o(self.rss_kb),
            self.note
        )
    }
}

/// A proxy Envoy for one row, started, checked and warmed up once, then kept for all rounds
/// (idle ones cost nothing measurable), so that rounds can be short and many without paying
/// Envoy's start-up each time.
pub struct Proxy {
    pub envoy: Option<Envoy>,
    pub note: String,
}

pub fn add_note(note: &mut String, what: &str) {
    if !note.is_empty() {
        note.push_str("; ");
    }
    note.push_str(what);
}

pub struct Bench {
    pub knobs: Knobs,
    pub envoy_bin: PathBuf,
    pub run_dir: PathBuf,
    pub clk_tck: f64,
}

impl Bench {
    /// Starts an Envoy pinned to `cpu`; on a refusal, its first error line.
    pub fn start(&self, name: &str, bootstrap: &Value, cpu: usize) -> Result<Envoy, String> {
        let mut b = Envoy::builder(bootstrap)
            .bin(&self.envoy_bin)
            .log_level("warn")
            .foreground();
        if self.knobs.pin {
            b = b.pinned_to(cpu);
        }
        fs::write(
            self.run_dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(bootstrap).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        b.try_start().map_err(|f: StartFailure| {
            let log = self.run_dir.join(format!("{name}.log"));
            let _ = fs::write(&log, &f.log);
            let reason = f
                .reason()
                .map(|r| r.replace('|', "").chars().take(160).collect::<String>())
                .unwrap_or_else(|| format!("see {}", log.display()));
            log!("Envoy ({name}) did not start: {reason}");
            format!("Envoy did not start: {reason}")
        })
    }

    pub fn prepare(&self, row: &Row, upstream_port: u16, c: &Creds, wasm: &Wasm) -> Proxy {
        let bootstrap = proxy_bootstrap(row, upstream_port, c, wasm);
        let envoy = match self.start(
            &format!("proxy-{}", row.name),
            &bootstrap,
            self.knobs.proxy_cpu,
        ) {
            Ok(e) => e,
            Err(note) => return Proxy { envoy: None, note },
        };
        let port = envoy.port();
        let mut note = String::new();
        let code = status_of(port, row.path, &row.headers);
        if !(200..300).contains(&code) {
            note = format!("check request got {code:03}");
        }
        if row.auth {
            let code = status_of(port, row.path, &[]);
            if code != 401 && code != 403 {
                add_note(
                    &mut note,
                    &format!("no credentials got {code:03}, not 401/403"),
                );
            }
        }
        if self.knobs.warmup > 0 {
            let out = self.run_dir.join(format!("warmup-{}.txt", row.name));
            let _ = run_until(
                wrk(&self.knobs, row, port, self.knobs.warmup, false),
                &out,
                Duration::from_secs(self.knobs.warmup + 30),
            );
        }
        log!(
            "ready: {:<18} port {port} pid {} {note}",
            row.name,
            envoy.pid()
        );
        Proxy {
            envoy: Some(envoy),
            note,
        }
    }

    pub fn measure(&self, round: u32, row: &Row, proxy: &Proxy, upstream: &Envoy) -> Run {
        let mut run = Run {
            round,
            variant: row.name.to_owned(),
            note: proxy.note.clone(),
            ..Run::default()
        };
        let Some(envoy) = &proxy.envoy else {
            return run;
        };
        let k = &self.knobs;
        let (pid, upid) = (envoy.pid(), upstream.pid());
        let out = self.run_dir.join(format!("wrk-{round}-{}.txt", row.name));

        let s0 = stats(envoy);
        let n0 = proc_cpu_ns(pid);
        let p0 = proc_ticks(pid);
        let u0 = proc_ticks(upid);
        let c0 = cpu_ticks(k.proxy_cpu);
        let l0 = cpu_ticks(k.load_cpu);
        let w0 = children_ticks();
        let t0 = Instant::now();
        match run_until(
            wrk(k, row, envoy.port(), k.duration, true),
            &out,
            Duration::from_secs(k.duration + 30),
        ) {
            Ok(status) if status.success() => {}
            _ => add_note(&mut run.note, "wrk failed"),
        }
        let secs = t0.elapsed().as_secs_f64();
        let w1 = children_ticks();
        let s1 = stats(envoy);
        let n1 = proc_cpu_ns(pid);
        let p1 = proc_ticks(pid);
        let u1 = proc_ticks(upid);
        let c1 = cpu_ticks(k.proxy_cpu);
        let l1 = cpu_ticks(k.load_cpu);
        run.rss_kb = rss_kb(pid);

        let w = parse_wrk(&fs::read_to_string(&out).unwrap_or_default());
        run.rps = Some(w.rps.unwrap_or(0.0));
        if w.rps.is_none() {
            add_note(&mut run.note, "no wrk result");
        }
        run.p50_us = w.p50_us;
        run.p99_us = w.p99_us;
        run.wrk_non2xx = w.non2xx;
        run.socket_errors = w.socket_errors;
        let completed = s1.0 - s0.0;
        run.non2xx = completed - (s1.1 - s0.1);
        let routed = (s1.2 - s0.2) + (s1.3 - s0.3);
        run.v2_share = (routed > 0).then(|| (s1.3 - s0.3) as f64 / routed as f64);
        let ns = n1.saturating_sub(n0) as f64;
        run.proxy_cpu = Some(ns / 1e9 / secs);
        run.proxy_cpu_us_per_req = (completed > 0).then(|| ns / 1000.0 / completed as f64);
        let (cb, ct) = (c1.0.saturating_sub(c0.0), c1.1.saturating_sub(c0.1));
        let proxy_ticks = p1.saturating_sub(p0) as f64;
        run.foreign_proxy_core = Some(if ct > 0 {
            ((cb as f64 - proxy_ticks) / ct as f64).max(0.0)
        } else {
            0.0
        });
        let (lb, lt) = (l1.0.saturating_sub(l0.0), l1.1.saturating_sub(l0.1));
        run.load_core_busy = Some(if lt > 0 { lb as f64 / lt as f64 } else { 0.0 });
        let others = lb as f64 - u1.saturating_sub(u0) as f64 - w1.saturating_sub(w0) as f64;
        run.foreign_load_core = Some(if lt > 0 {
            (others / lt as f64).max(0.0)
        } else {
            0.0
        });
        log!(
            "round {round} {:<18} {:>9.0} req/s  p50 {}us  p99 {}us  non-2xx {}  proxy cpu {:.3} ({}us/req)  foreign {:.3}/{:.3}  {}",
            row.name,
            run.rps.unwrap_or(0.0),
            run.p50_us.map_or("?".into(), |v| format!("{v:.1}")),
            run.p99_us.map_or("?".into(), |v| format!("{v:.1}")),
            run.non2xx,
            run.proxy_cpu.unwrap_or(0.0),
            run.proxy_cpu_us_per_req
                .map_or("nan".into(), |v| format!("{v:.1}")),
            run.foreign_proxy_core.unwrap_or(0.0),
            run.foreign_load_core.unwrap_or(0.0),
            run.note
        );
        run
    }

    /// BENCH_PROFILE=1: one more wrk run under `perf stat` (software events: these VMs often
    /// expose no hardware counters) and `perf record -e cpu-clock` on the proxy, to say where
    /// its CPU goes per request: kernel (syscalls, loopback TCP) vs Envoy's own code vs the
    /// wasm VM's JIT code.
    pub fn profile(&self, row: &Row, envoy: &Envoy) -> Result<ProfileRow, String> {
        let k = &self.knobs;
        let window = k.profile_seconds;
        let pid = envoy.pid();
        let dir = &self.run_dir;
        let wrk_out = fs::File::create(dir.join(format!("profile-wrk-{}.txt", row.name)))
            .map_err(|e| e.to_string())?;
        let mut load = wrk(k, row, envoy.port(), window + 2, true)
            .stdout(wrk_out)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("wrk: {e}"))?;
        thread::sleep(Duration::from_secs(1));
        let s0 = stats(envoy);
        let (ut0, st0) = proc_user_sys(pid);
        let data = dir.join(format!("perf-{}.data", row.name));
        let csv = dir.join(format!("perf-stat-{}.csv", row.name));
        let mut record = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "4999", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .args(["--", "sleep", &window.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf record: {e}"))?;
        let _ = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "task-clock,context-switches,raw_syscalls:sys_enter",
                "-p",
            ])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&csv)
            .args(["--", "sleep", &window.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = record.wait();
        let s1 = stats(envoy);
        let (ut1, st1) = proc_user_sys(pid);
        let _ = load.wait();
        let requests = (s1.0 - s0.0).max(0) as u64;
        let stat_text = fs::read_to_string(&csv).unwrap_or_default();
        let event = |name: &str| -> Option<f64> {
            stat_text
                .lines()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f.get(2) == Some(&name))
                .and_then(|f| f.first()?.parse().ok())
        };
        let report = Command::new("perf")
            .args(["report", "-i"])
            .arg(&data)
            .args(["--sort", "dso", "--stdio", "--no-children"])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut dso = [0.0f64; 5]; // kernel, envoy, JIT, libc, other
        for line in report.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with('#') || w.len() < 2 {
                continue;
            }
            let Ok(p) = w[0].trim_end_matches('%').parse::<f64>() else {
                continue;
            };
            let d = w[1];
            let slot = if d.contains("kernel") {
                0
            } else if d.ends_with("envoy") {
                1
            } else if ["libc", "ld-linux", "libm", "libpthread"]
                .iter()
                .any(|l| d.contains(l))
            {
                3
            } else if ["unknown", "JIT", "perf-"].iter().any(|l| d.contains(l)) {
                2
            } else {
                4
            };
            dso[slot] += p;
        }
        log!(
            "profiled {}: {requests} requests; kernel/envoy/jit/libc/other % = {:.1} {:.1} {:.1} {:.1} {:.1}",
            row.name,
            dso[0],
            dso[1],
            dso[2],
            dso[3],
            dso[4]
        );
        Ok(ProfileRow {
            name: row.name,
            requests,
            task_ms: event("task-clock"),
            ctx: event("context-switches"),
            syscalls: event("raw_syscalls:sys_enter"),
            user_ticks: ut1.saturating_sub(ut0),
            sys_ticks: st1.saturating_sub(st0),
            clk_tck: self.clk_tck,
            dso,
        })
    }
}

pub struct ProfileRow {
    pub name: &'static str,
    pub requests: u64,
    pub task_ms: Option<f64>,
    pub ctx: Option<f64>,
    pub syscalls: Option<f64>,
    pub user_ticks: u64,
    pub sys_ticks: u64,
    pub clk_tck: f64,
    pub dso: [f64; 5],
}
