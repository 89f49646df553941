//! The wall clock, as the integers that travel in messages and stored
//! state: time since the Unix epoch in milliseconds (event and stats
//! stamps) or nanoseconds (message stamps). A clock before
//! 1970 reads as 0; one past the year 2554 saturates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_read_the_same_clock() {
        let ms = now_ms();
        let ns = now_ns();
        assert!(ms > 1_600_000_000_000, "a clock after 2020");
        assert!(ns / 1_000_000 >= ms && ns / 1_000_000 - ms < 1_000);
    }
}
