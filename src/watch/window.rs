//! Per-second counts over a sliding window. Each worker records into its own
//! window of deltas on the request path (no host call), and on its tick merges
//! them into the window all workers share (proxy-wasm shared data, a fixed
//! byte layout written with compare-and-swap); the guard judges the shared one.

/// What completed in one second (or a window of them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub failed: u64,
    pub slow: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.total = self.total.saturating_add(other.total);
        self.failed = self.failed.saturating_add(other.failed);
        self.slow = self.slow.saturating_add(other.slow);
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// The counts of the last `seconds` seconds, one slot per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `(second, counts)`, slot `second % len`.
    slots: Vec<(u64, Counts)>,
}

/// Bytes per slot in the shared layout: second, total, failed, slow (u64 LE).
const SLOT_BYTES: usize = 32;

impl Window {
    /// A window of `seconds` one-second slots (at least one).
    pub fn new(seconds: u32) -> Self {
        let len = usize::try_from(seconds.max(1)).unwrap_or(1);
        Self {
            slots: vec![(0, Counts::default()); len],
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Adds `counts` to `second`. A slot holding an older second is reused; a
    /// record for a second older than the slot's is dropped (out of window).
    pub fn record(&mut self, second: u64, counts: Counts) {
        if counts.is_zero() {
            return;
        }
        let index = usize::try_from(second % self.len()).unwrap_or(0);
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.0 == second {
                slot.1.add(counts);
            } else if slot.0 < second || slot.1.is_zero() {
                *slot = (second, counts);
            }
        }
    }

    /// The sum over the seconds `now - len + 1 ..= now`.
    pub fn total(&self, now: u64) -> Counts {
        let oldest = now.saturating_sub(self.len() - 1);
        let mut sum = Counts::default();
        for (second, counts) in &self.slots {
            if (oldest..=now).contains(second) {
                sum.add(*counts);
            }
        }
        sum
    }

    /// Adds every slot of `other` (a worker's deltas) into this window.
    pub fn merge(&mut self, other: &Window) {
        for (second, counts) in &other.slots {
            self.record(*second, *counts);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|(_, c)| c.is_zero())
    }

    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot = (0, Counts::default());
        }
    }

    /// The shared-data layout: each slot as four little-endian u64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.slots.len() * SLOT_BYTES);
        for (second, c) in &self.slots {
            for v in [*second, c.total, c.failed, c.slow] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Reads the shared layout; `None` if it is not a window of `seconds`
    /// slots (empty, another configuration's, or damaged): start afresh.
    pub fn from_bytes(bytes: &[u8], seconds: u32) -> Option<Window> {
        let mut window = Window::new(seconds);
        if bytes.len() != window.slots.len() * SLOT_BYTES {
            return None;
        }
        let word = |chunk: &[u8], i: usize| -> Option<u64> {
            let b: [u8; 8] = chunk.get(i * 8..i * 8 + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        for (slot, chunk) in window.slots.iter_mut().zip(bytes.chunks_exact(SLOT_BYTES)) {
            let counts = Counts {
                total: word(chunk, 1)?,
                failed: word(chunk, 2)?,
                slow: word(chunk, 3)?,
            };
            *slot = (word(chunk, 0)?, counts);
        }
        Some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(total: u64, failed: u64, slow: u64) -> Counts {
        Counts {
            total,
            failed,
            slow,
        }
    }

    #[test]
    fn slides_by_the_second() {
        let mut w = Window::new(3);
        w.record(100, c(1, 1, 0));
        w.record(100, c(1, 0, 0));
        w.record(101, c(2, 0, 1));
        w.record(102, c(4, 0, 0));
        assert_eq!(w.total(102), c(8, 1, 1));
        assert_eq!(w.total(103), c(6, 0, 1), "second 100 left the window");
        w.record(103, c(1, 0, 0));
        assert_eq!(w.total(103), c(7, 0, 1));
        w.record(100, c(9, 9, 9));
        assert_eq!(
            w.total(103),
            c(7, 0, 1),
            "a late record for a past second is dropped"
        );
        assert_eq!(w.total(200), Counts::default());
    }

    #[test]
    fn workers_merge_through_bytes() {
        let mut shared = Window::new(60);
        let mut a = Window::new(60);
        let mut b = Window::new(60);
        a.record(1_000, c(3, 1, 0));
        b.record(1_000, c(2, 2, 1));
        b.record(1_001, c(1, 0, 0));
        for worker in [&a, &b] {
            let mut s = Window::from_bytes(&shared.to_bytes(), 60).unwrap();
            s.merge(worker);
            shared = s;
        }
        assert_eq!(shared.total(1_001), c(6, 3, 1));
        a.clear();
        assert!(a.is_empty());
        assert_eq!(Window::from_bytes(&[], 60), None);
        assert_eq!(
            Window::from_bytes(&shared.to_bytes(), 30),
            None,
            "another window size"
        );
        assert_eq!(Window::from_bytes(&shared.to_bytes()[1..], 60), None);
    }
}
