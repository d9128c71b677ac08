//! Where the scheduler reads the time for leases and deadlines.

use multiscanner_proto::domain::{UnixMillis, now_millis};

/// The system clock in production; in tests, tokio's clock, which a paused
/// test runtime moves only when told, so lease expiry is tested without
/// sleeping.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// Wall time at `at`, moved forward with tokio's clock.
    Tokio {
        wall: UnixMillis,
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's time from now on.
    pub fn tokio() -> Self {
        Clock::Tokio {
            wall: now_millis(),
            at: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> UnixMillis {
        match self {
            Clock::System => now_millis(),
            Clock::Tokio { wall, at } => *wall + at.elapsed().as_millis() as i64,
        }
    }
}
