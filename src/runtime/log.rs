//! The members' log lines: one line per event on standard error, in logfmt —
//! `ts=2026-11-28T06:46:37.123Z level=info node=1 msg="became leader in term 2"` — so that
//! they can be read by people and parsed by log collectors alike. Values and payloads are
//! never logged.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::NodeId;

/// How much a line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Normal operation: start-up, leadership, membership.
    Info,
    /// Something an operator should look at: refused connections, a stalling disk, a quota.
    Warn,
    /// The member cannot go on as it is.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes one line for member `node`.
pub fn log(level: Level, node: NodeId, message: impl std::fmt::Display) {
    eprintln!(
        "{}",
        line(level, node, &message.to_string(), SystemTime::now())
    );
}

fn line(level: Level, node: NodeId, message: &str, at: SystemTime) -> String {
    format!(
        "ts={} level={} node={node} msg={message:?}",
        timestamp(at),
        level.name()
    )
}

/// `at` as RFC 3339 in UTC with milliseconds.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_are_logfmt_with_an_rfc3339_time_and_quoted_messages() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_846_997_123);
        assert_eq!(timestamp(at), "2026-11-28T06:23:17.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        let text = line(Level::Warn, 3, "a \"quoted\"\nline", at);
        assert_eq!(
            text,
            "ts=2026-11-28T06:23:17.123Z level=warn node=3 msg=\"a \\\"quoted\\\"\\nline\""
        );
    }
}
