//! Requests waiting for something the VM has not got yet (the first JWKS):
//! a bounded queue with deadlines, owned by the root context. Pure: the glue
//! parks a request's context id, and later asks which to resume or refuse.

/// One waiting request and what the glue keeps with it.
#[derive(Debug)]
pub struct Parked<T> {
    pub context_id: u32,
    deadline_ms: u64,
    pub data: T,
}

/// The waiting requests, oldest first.
#[derive(Debug)]
pub struct Parking<T> {
    entries: Vec<Parked<T>>,
    capacity: usize,
}

impl<T> Parking<T> {
    /// At most `capacity` requests wait at once; more are refused at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Parks a request until `now_ms + wait_ms`. Gives `data` back when full.
    pub fn park(&mut self, context_id: u32, now_ms: u64, wait_ms: u64, data: T) -> Result<(), T> {
        if self.entries.len() >= self.capacity {
            return Err(data);
        }
        self.entries.push(Parked {
            context_id,
            deadline_ms: now_ms.saturating_add(wait_ms),
            data,
        });
        Ok(())
    }

    /// Every waiting request (what they waited for has arrived).
    pub fn take_all(&mut self) -> Vec<Parked<T>> {
        std::mem::take(&mut self.entries)
    }

    /// The requests whose data satisfies `pred` (what they waited for has
    /// arrived); the others keep waiting.
    pub fn take_if(&mut self, pred: impl Fn(&T) -> bool) -> Vec<Parked<T>> {
        let (taken, waiting) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|p| pred(&p.data));
        self.entries = waiting;
        taken
    }

    /// The requests whose wait is over at `now_ms`; the others keep waiting.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<Parked<T>> {
        let (expired, waiting) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|p| p.deadline_ms <= now_ms);
        self.entries = waiting;
        expired
    }

    /// A request that went away must not be resumed later.
    pub fn forget(&mut self, context_id: u32) {
        self.entries.retain(|p| p.context_id != context_id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<T>(v: &[Parked<T>]) -> Vec<u32> {
        v.iter().map(|p| p.context_id).collect()
    }

    #[test]
    fn bounded_with_deadlines() {
        let mut q = Parking::new(3);
        assert!(q.park(1, 1_000, 500, 'a').is_ok());
        assert!(q.park(2, 1_200, 500, 'b').is_ok());
        assert!(q.park(3, 1_400, 500, 'c').is_ok());
        assert_eq!(
            q.park(4, 1_400, 500, 'd'),
            Err('d'),
            "full: refused at once"
        );
        assert!(ids(&q.take_expired(1_499)).is_empty());
        assert_eq!(
            ids(&q.take_expired(1_500)),
            vec![1],
            "deadline is inclusive"
        );
        assert_eq!(ids(&q.take_expired(1_700)), vec![2]);
        q.forget(3);
        assert!(q.is_empty());
        assert!(q.park(5, 0, u64::MAX, 'e').is_ok(), "no overflow");
        assert!(ids(&q.take_expired(u64::MAX - 1)).is_empty());
        assert!(q.park(6, 0, 10, 'f').is_ok());
        assert_eq!(ids(&q.take_if(|d| *d == 'f')), vec![6]);
        assert_eq!(ids(&q.take_all()), vec![5]);
        assert_eq!(q.len(), 0);
    }
}
