//! Watching every version's responses, the canary guard and the ramp, pure:
//! - [`class`]: what a response was (status class, gRPC status), and whether
//!   a guard counts it as a failure;
//! - [`window`]: per-second counts over a sliding window, mergeable across
//!   workers through a fixed byte layout (proxy-wasm shared data);
//! - [`guard`]: the verdict on a canary from its window;
//! - [`ramp`]: a canary's share as a function of the clock.

pub mod class;
pub mod guard;
pub mod ramp;
pub mod window;
