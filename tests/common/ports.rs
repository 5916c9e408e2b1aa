//! Fixed ports for configurations that cannot take port 0 (the demo's bootstrap).
//!
//! Chosen below the kernel's ephemeral range (32768 and up by default), so the ephemeral ports
//! every other test, and every other process on the machine, binds with port 0 cannot take
//! them between the check here and the moment Envoy binds them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;

const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

/// `n` distinct ports in 20000..32000 that are free now.
pub fn free_fixed_ports(n: usize) -> Vec<u16> {
    let seed = RandomState::new();
    let mut ports: Vec<u16> = Vec::new();
    let mut held = Vec::new();
    let mut attempt = 0u64;
    while ports.len() < n {
        attempt += 1;
        assert!(attempt < 10_000, "no {n} free ports in {LOW}..{HIGH}");
        let port = LOW + (seed.hash_one(attempt) % u64::from(HIGH - LOW)) as u16;
        if ports.contains(&port) {
            continue;
        }
        // Held until all are found, so the same port is not handed out twice.
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
            ports.push(port);
        }
    }
    ports
}
