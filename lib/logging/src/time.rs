//! Civil UTC time from `SystemTime`, for klog's header, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time, to the microsecond.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Utc {
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) micros: u32,
}

impl Utc {
    pub(crate) fn from(time: SystemTime) -> Utc {
        // Before 1970 is not a time a log line is written at; print the epoch.
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = (secs / 86_400) as i64;
        let of_day = secs % 86_400;
        let (_, month, day) = civil_from_days(days);
        Utc {
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day / 60 % 60) as u32,
            second: (of_day % 60) as u32,
            micros: since.subsec_micros(),
        }
    }
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_052), (2024, 11, 25));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn utc_fields() {
        // 2024-11-25T02:46:06.357519Z
        let t = UNIX_EPOCH + Duration::new(1_732_502_766, 357_519_123);
        assert_eq!(
            Utc::from(t),
            Utc {
                month: 11,
                day: 25,
                hour: 2,
                minute: 46,
                second: 6,
                micros: 357_519,
            }
        );
    }
}
