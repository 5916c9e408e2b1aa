//! A failing dependency, reported once per streak: the first failure is a
//! warning an operator must act on, the repeats are debug lines, and the
//! recovery is said once.

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    failing: bool,
}

impl Streak {
    /// Records a failure; true if it starts a streak (warn), false if it
    /// continues one (debug).
    pub fn fail(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// Records a success; true if it ends a streak (say it recovered).
    pub fn recover(&mut self) -> bool {
        std::mem::replace(&mut self.failing, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_streak() {
        let mut s = Streak::default();
        assert!(!s.recover(), "nothing to recover from");
        assert!(s.fail());
        assert!(!s.fail());
        assert!(!s.fail());
        assert!(s.recover());
        assert!(!s.recover());
        assert!(s.fail(), "a new streak is reported again");
    }
}
