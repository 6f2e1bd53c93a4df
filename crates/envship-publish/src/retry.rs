//! When and how long to wait before trying a request again.

use std::time::Duration;

/// Exponential backoff: attempt `n` (1-based) that failed waits `base_delay * 2^(n-1)`, capped at
/// `max_delay`, unless the server said how long to wait (`Retry-After`, rate-limit reset), which
/// is honoured up to `max_server_delay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, first one included.
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub base_delay: Duration,
    /// Upper bound of the exponential delay.
    pub max_delay: Duration,
    /// A server-requested wait longer than this fails the request instead of sleeping.
    pub max_server_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_server_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay before the next attempt, preferring the server's wish when it gave one.
    pub fn delay(&self, attempt: u32, server: Option<Duration>) -> Duration {
        match server {
            Some(d) => d.max(self.backoff(attempt).min(Duration::from_millis(100))),
            None => self.backoff(attempt),
        }
    }
}

/// Parse a `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let ms = (when.as_millisecond() - jiff::Timestamp::now().as_millisecond()).max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Delay until an `x-ratelimit-reset` epoch second.
pub fn until_epoch(reset: &str) -> Option<Duration> {
    let reset: i64 = reset.trim().parse().ok()?;
    let now = jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(
        u64::try_from((reset - now).max(0)).unwrap_or(0) + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_server_delay: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(10));
        assert_eq!(p.backoff(2), Duration::from_millis(20));
        assert_eq!(p.backoff(3), Duration::from_millis(40));
        assert_eq!(p.backoff(4), Duration::from_millis(50));
        assert_eq!(p.backoff(40), Duration::from_millis(50));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert!(until_epoch("0").is_some());
    }
}
