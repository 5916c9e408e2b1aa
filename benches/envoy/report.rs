//! The markdown report: medians over rounds, ratios, run health, the profile table.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::measure::{Knobs, ProfileRow, Run};
use crate::rows::Row;

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// 12345.6 -> "12,346".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

pub struct Report<'a> {
    pub runs: &'a [Run],
}

impl Report<'_> {
    /// The rounds of a variant that produced a rate.
    pub fn measured(&self, name: &str) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| r.variant == name && r.rps.is_some_and(|v| v != 0.0))
            .collect()
    }

    pub fn med(&self, name: &str, field: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
        median(self.measured(name).into_iter().filter_map(field).collect())
    }

    pub fn rps(&self, name: &str) -> Option<f64> {
        self.med(name, |r| r.rps)
    }

    pub fn spread(&self, name: &str) -> String {
        let vals: Vec<f64> = self.measured(name).iter().filter_map(|r| r.rps).collect();
        match median(vals.clone()) {
            Some(m) if m != 0.0 => {
                let max = vals.iter().copied().fold(f64::MIN, f64::max);
                let min = vals.iter().copied().fold(f64::MAX, f64::min);
                format!("{:.1}%", (max - min) / m * 100.0)
            }
            _ => "—".into(),
        }
    }

    pub fn invalid(&self, name: &str) -> Vec<String> {
        let mut why = BTreeSet::new();
        for r in self.runs.iter().filter(|r| r.variant == name) {
            if r.non2xx != 0 || r.wrk_non2xx != 0 {
                why.insert("non-2xx responses".to_owned());
            }
            if r.socket_errors != 0 {
                why.insert("socket errors".to_owned());
            }
            if !r.note.is_empty() {
                why.insert(r.note.clone());
            }
        }
        why.into_iter().collect()
    }

    pub fn ratio(&self, a: &str, b: Option<&str>) -> String {
        match (self.rps(a), b.and_then(|b| Some((b, self.rps(b)?)))) {
            (Some(ra), Some((b, rb))) if rb != 0.0 => format!("{:.3} ({b})", ra / rb),
            _ => "—".into(),
        }
    }

    /// The median over rounds of `field(a) / field(b)` within the same round: the
    /// interleaved comparison (drift between rounds cancels out).
    pub fn paired(&self, a: &str, b: &str, field: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
        let ratios = self
            .measured(a)
            .into_iter()
            .filter_map(|ra| {
                let rb = self
                    .measured(b)
                    .into_iter()
                    .find(|rb| rb.round == ra.round)?;
                let (x, y) = (field(ra)?, field(rb)?);
                (y != 0.0).then(|| x / y)
            })
            .collect();
        median(ratios)
    }

    pub fn cpu_req(&self, name: &str, floor: Option<&str>) -> String {
        let Some(c) = self.med(name, |r| r.proxy_cpu_us_per_req) else {
            return "—".into();
        };
        match floor.and_then(|f| self.med(f, |r| r.proxy_cpu_us_per_req)) {
            Some(f) if f != 0.0 => format!("{c:.1} ({:.3})", c / f),
            _ => format!("{c:.1}"),
        }
    }
}

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("—".into(), f)
}

pub struct Context {
    pub date: String,
    pub commit: String,
    pub ncpu: usize,
    pub cpu_model: String,
    pub envoy_version: String,
    pub runtime: String,
    pub layout: String,
    pub uptime_before: String,
    pub uptime_after: String,
    pub gate_size: String,
    pub minimal_size: u64,
    pub command: String,
    pub upstream_rss_kb: f64,
    pub runs_file: String,
}

pub fn report(
    ctx: &Context,
    k: &Knobs,
    rows: &[Row],
    runs: &[Run],
    profile: &[ProfileRow],
) -> String {
    let rep = Report { runs };
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# canary-gate benchmark results\n");
    let _ = writeln!(w, "- date: {}; commit {}", ctx.date, ctx.commit);
    let _ = writeln!(
        w,
        "- machine: {} cores, {}; Envoy {}, wasm runtime envoy.wasm.runtime.{}",
        ctx.ncpu, ctx.cpu_model, ctx.envoy_version, ctx.runtime
    );
    let _ = writeln!(w, "- layout: {}", ctx.layout);
    let _ = writeln!(
        w,
        "- method: one proxy Envoy per variant, started and warmed up ({}s of wrk) once; then {} round(s) of \
         `wrk -t1 -c{} -d{}s --latency` against each variant in turn (order reversed every other round); \
         medians over rounds",
        k.warmup, k.rounds, k.connections, k.duration
    );
    let _ = writeln!(w, "- load before: `{}`", ctx.uptime_before);
    let _ = writeln!(w, "- load after: `{}`", ctx.uptime_after);
    let _ = writeln!(
        w,
        "- .wasm sizes: canary_gate.wasm {} bytes; minimal_filter.wasm {} bytes",
        ctx.gate_size, ctx.minimal_size
    );
    let _ = writeln!(
        w,
        "- command: `{}` (BENCH_ROUNDS={} BENCH_DURATION={} BENCH_WARMUP={} BENCH_CONNECTIONS={})",
        ctx.command, k.rounds, k.duration, k.warmup, k.connections
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "| variant | req/s (median) | × no filter | × native equivalent | × wasm floor | × same hostcalls, no logic | p50 ms | p99 ms | non-2xx | proxy CPU µs/req (× floor) |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |v: Option<f64>| opt(v, |us| format!("{:.3}", us / 1000.0));
    for r in rows {
        let bad = rep.invalid(r.name);
        let non2xx: i64 = runs
            .iter()
            .filter(|x| x.variant == r.name)
            .map(|x| x.non2xx)
            .sum();
        let mut label = format!("**{}**: {}", r.name, r.desc);
        if !bad.is_empty() {
            let _ = write!(label, " — **INVALID** ({})", bad.join("; "));
        }
        let vs_none = if r.name == "none" {
            "1.000".to_owned()
        } else {
            rep.ratio(r.name, Some("none"))
        };
        let _ = writeln!(
            w,
            "| {label} | {} | {vs_none} | {} | {} | {} | {} | {} | {non2xx} | {} |",
            opt(rep.rps(r.name), thousands),
            rep.ratio(r.name, r.native),
            rep.ratio(r.name, r.floor),
            rep.ratio(r.name, r.twin),
            ms(rep.med(r.name, |x| x.p50_us)),
            ms(rep.med(r.name, |x| x.p99_us)),
            rep.cpu_req(r.name, r.floor),
        );
    }
    let compared: Vec<&Row> = rows
        .iter()
        .filter(|r| r.twin.is_some() || r.peer.is_some())
        .collect();
    if !compared.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "Paired comparisons: the median over rounds of this row's figure divided by the other row's");
        let _ = writeln!(w, "in the same round (req/s: above 1 is faster; proxy CPU per request: below 1 is cheaper). The twin");
        let _ = writeln!(w, "makes the same hostcalls with no logic; the peer is another canary-gate row of the same build.");
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "| variant | × twin, req/s | × twin, CPU µs/req | × peer, req/s | × peer, CPU µs/req |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|");
        let f3 = |v: Option<f64>| opt(v, |x| format!("{x:.3}"));
        for r in compared {
            let pair = |other: Option<&str>, field: fn(&Run) -> Option<f64>| match other {
                Some(o) => format!("{} ({o})", f3(rep.paired(r.name, o, field))),
                None => "—".into(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                r.name,
                pair(r.twin, |x| x.rps),
                pair(r.twin, |x| x.proxy_cpu_us_per_req),
                pair(r.peer, |x| x.rps),
                pair(r.peer, |x| x.proxy_cpu_us_per_req),
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Run health (medians over rounds): req/s spread is (max − min) / median; proxy CPU is the proxy Envoy's");
    let _ = writeln!(w, "CPU time per wall second (1.0 = its core saturated); foreign is the share of a core used by processes other");
    let _ = writeln!(w, "than this benchmark's (other work on the machine: anything above ~0.05 makes the figures noisy); load core is");
    let _ = writeln!(w, "how busy the wrk + upstream core was in total; canary share is the fraction routed to cluster v2; RSS is the");
    let _ = writeln!(w, "proxy Envoy's VmRSS after its last round.");
    let _ = writeln!(w);
    let _ = writeln!(w, "| variant | rounds | req/s spread | proxy CPU | foreign on proxy core | load core busy | foreign on load core | canary share | proxy RSS MiB |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let f2 = |v: Option<f64>| opt(v, |x| format!("{x:.2}"));
    for r in rows {
        let n = rep.measured(r.name).len();
        let _ = writeln!(
            w,
            "| {} | {n} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            rep.spread(r.name),
            f2(rep.med(r.name, |x| x.proxy_cpu)),
            f2(rep.med(r.name, |x| x.foreign_proxy_core)),
            f2(rep.med(r.name, |x| x.load_core_busy)),
            f2(rep.med(r.name, |x| x.foreign_load_core)),
            opt(rep.med(r.name, |x| x.v2_share), |x| format!("{x:.3}")),
            opt(rep.med(r.name, |x| x.rss_kb), |x| format!(
                "{:.1}",
                x / 1024.0
            )),
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Upstream Envoy RSS at the end: {:.1} MiB. Raw per-round figures: `{}`.",
        ctx.upstream_rss_kb / 1024.0,
        ctx.runs_file
    );
    if !profile.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "Where the proxy's CPU goes (BENCH_PROFILE=1: one extra wrk run per variant under `perf stat` and");
        let _ = writeln!(w, "`perf record -e cpu-clock`; per request; sample shares by binary: kernel = syscalls and loopback TCP,");
        let _ = writeln!(w, "envoy = Envoy's own code, wasm JIT = code the wasm runtime generated, i.e. the filter itself):");
        let _ = writeln!(w);
        let _ = writeln!(w, "| variant | requests | CPU µs/req | user µs/req | sys µs/req | syscalls/req | ctx switches/req | kernel % | envoy % | wasm JIT % | libc % | other % |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in profile {
            let req = p.requests.max(1) as f64;
            let per = |v: Option<f64>, scale: f64| opt(v, |x| format!("{:.1}", x * scale / req));
            let ticks_us = |t: u64| format!("{:.1}", t as f64 / p.clk_tck * 1e6 / req);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                p.name,
                p.requests.max(1),
                per(p.task_ms, 1e3),
                ticks_us(p.user_ticks),
                ticks_us(p.sys_ticks),
                per(p.syscalls, 1.0),
                per(p.ctx, 1.0),
                p.dso[0],
                p.dso[1],
                p.dso[2],
                p.dso[3],
                p.dso[4]
            );
        }
    }
    o
}
