//! What machine a measurement ran on, and when: the chart's caption and the
//! results file say it, because these numbers belong to one machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// The CPU model, the machine's number of CPUs, and the kernel release,
/// e.g. `Intel(R) Xeon(R) Processor, 2 cores, Linux 6.18.44`.
pub fn description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or_else(|| "unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = cpus();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    format!("{model}, {cores} cores, Linux {kernel}")
}

/// The machine's CPUs (`processor` lines in /proc/cpuinfo), whichever this
/// process is allowed to run on (a pinned run may use only one).
pub fn cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| {
            text.lines()
                .filter(|line| line.starts_with("processor"))
                .count()
        })
        .unwrap_or(0)
}

/// The load average over the last minute (`/proc/loadavg`), as `uptime`
/// shows it: how many tasks wanted a CPU, on average. On a 2-core machine
/// anything above 2 means the measurement shared its CPU.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// The current UTC date and time, `2026-11-30 09:12 UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// `secs` after the Unix epoch as a UTC date and time (no time zone
/// database needed: UTC has no daylight saving).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Days to a civil date (Howard Hinnant's algorithm, "chrono-Compatible
    // Low-Level Date Algorithms").
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 (a leap day in a century year) 12:34.
        assert_eq!(utc(951_827_640), "2000-02-29 12:34 UTC");
        assert_eq!(utc(1_798_761_600), "2027-01-01 00:00 UTC");
    }
}
