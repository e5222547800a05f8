//! `process_*` metrics read from `/proc`, as the Go client's process collector exposes them on
//! Linux, and component-base's `process_start_time_seconds`.
//!
//! Which `process_start_time_seconds` a sidecar exposes depends on how upstream wired it: the
//! csi-lib-utils metrics manager registers component-base's (help text `[ALPHA] Start time of
//! the process since unix epoch in seconds.`), the legacy registry has the Go client's (no
//! prefix), and when both are served the manager's registry comes first, so Go's `Gatherers`
//! keeps the `[ALPHA]` one and drops the other. See the crate documentation for the table.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;
use crate::family::{MetricFamily, MetricType, Stability};
use crate::metric::{Gauge, Opts};
use crate::registry::{Collector, Registry};

/// Clock ticks per second of the times in `/proc/<pid>/stat`. The Go client (through
/// prometheus/procfs) assumes 100, `USER_HZ` on every mainstream Linux architecture; so do we,
/// so that the values match and we need no `sysconf(_SC_CLK_TCK)` (no libc, no unsafe).
pub const USER_HZ: f64 = 100.0;

const CPU_SECONDS: &str = "process_cpu_seconds_total";
const OPEN_FDS: &str = "process_open_fds";
const MAX_FDS: &str = "process_max_fds";
const VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
const VIRTUAL_MEMORY_MAX: &str = "process_virtual_memory_max_bytes";
const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// The name of the process start time metric.
pub(crate) const PROCESS_START_TIME: &str = "process_start_time_seconds";
const START_TIME: &str = PROCESS_START_TIME;
const NETWORK_RECEIVE: &str = "process_network_receive_bytes_total";
const NETWORK_TRANSMIT: &str = "process_network_transmit_bytes_total";

/// The help text of `process_start_time_seconds`, in both the Go client and component-base.
const START_TIME_HELP: &str = "Start time of the process since unix epoch in seconds.";

/// The Go client's process collector (`collectors.NewProcessCollector`) for this process, as it
/// behaves on Linux: `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
/// `process_virtual_memory_bytes`, `process_virtual_memory_max_bytes`,
/// `process_resident_memory_bytes`, `process_start_time_seconds`,
/// `process_network_receive_bytes_total` and `process_network_transmit_bytes_total`, with the
/// Go client's help texts (no stability prefix).
///
/// As in Go (without `ReportErrors`), a value that cannot be read is left out.
#[derive(Clone, Debug)]
pub struct ProcessCollector {
    proc_root: PathBuf,
    start_time: bool,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        ProcessCollector::new()
    }
}

impl ProcessCollector {
    /// All nine metrics, read from `/proc/self` (and `/proc/stat` for the boot time).
    pub fn new() -> ProcessCollector {
        ProcessCollector {
            proc_root: PathBuf::from("/proc"),
            start_time: true,
        }
    }

    /// Leaves out `process_start_time_seconds`, for a registry that gets component-base's
    /// `[ALPHA]` one from [`register_process_start_time`] (what the Go sidecars expose when
    /// their metrics manager and the legacy registry are served together).
    pub fn without_start_time(mut self) -> ProcessCollector {
        self.start_time = false;
        self
    }

    /// Reads from `root` instead of `/proc` (`root/self/stat`, `root/stat`, ...), for tests.
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> ProcessCollector {
        self.proc_root = root.into();
        self
    }

    fn self_path(&self, file: &str) -> PathBuf {
        self.proc_root.join("self").join(file)
    }

    fn is_real_procfs(&self) -> bool {
        self.proc_root == Path::new("/proc")
    }
}

impl Collector for ProcessCollector {
    fn family_names(&self) -> Vec<String> {
        let mut names = vec![
            CPU_SECONDS,
            OPEN_FDS,
            MAX_FDS,
            VIRTUAL_MEMORY,
            VIRTUAL_MEMORY_MAX,
            RESIDENT_MEMORY,
            NETWORK_RECEIVE,
            NETWORK_TRANSMIT,
        ];
        if self.start_time {
            names.push(START_TIME);
        }
        names.into_iter().map(String::from).collect()
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let family = |name: &str, help: &str, metric_type: MetricType, value: f64| {
            MetricFamily::new(name, help, Stability::Raw, metric_type).with_value(&[], value)
        };
        if let Some(stat) = read_stat(&self.self_path("stat")) {
            let cpu = (stat.utime + stat.stime) as f64 / USER_HZ;
            out.push(family(
                CPU_SECONDS,
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
                cpu,
            ));
            out.push(family(
                VIRTUAL_MEMORY,
                "Virtual memory size in bytes.",
                MetricType::Gauge,
                stat.vsize as f64,
            ));
            let page_size = page_size(&self.self_path("auxv"));
            out.push(family(
                RESIDENT_MEMORY,
                "Resident memory size in bytes.",
                MetricType::Gauge,
                (stat.rss * page_size) as f64,
            ));
            if self.start_time
                && let Some(start) = start_time(&self.proc_root, &stat)
            {
                out.push(family(
                    START_TIME,
                    START_TIME_HELP,
                    MetricType::Gauge,
                    start,
                ));
            }
        }
        if let Some(fds) = open_fds(&self.self_path("fd"), self.is_real_procfs()) {
            out.push(family(
                OPEN_FDS,
                "Number of open file descriptors.",
                MetricType::Gauge,
                fds as f64,
            ));
        }
        if let Some(limits) = read_limits(&self.self_path("limits")) {
            out.push(family(
                MAX_FDS,
                "Maximum number of open file descriptors.",
                MetricType::Gauge,
                limits.open_files as f64,
            ));
            out.push(family(
                VIRTUAL_MEMORY_MAX,
                "Maximum amount of virtual memory available in bytes.",
                MetricType::Gauge,
                limits.address_space as f64,
            ));
        }
        if let Some((received, sent)) = read_netstat(&self.self_path("net/netstat")) {
            out.push(family(
                NETWORK_RECEIVE,
                "Number of bytes received by the process over the network.",
                MetricType::Counter,
                received,
            ));
            out.push(family(
                NETWORK_TRANSMIT,
                "Number of bytes sent by the process over the network.",
                MetricType::Counter,
                sent,
            ));
        }
    }
}

/// Registers component-base's `process_start_time_seconds` (`[ALPHA]` help text), which the
/// csi-lib-utils metrics manager adds by default (`metrics.RegisterProcessStartTime`). Like
/// component-base it falls back to the current time, in whole seconds, if `/proc` cannot be
/// read.
pub fn register_process_start_time(registry: &Registry) -> Result<()> {
    let gauge = Gauge::new(Opts::new(START_TIME, START_TIME_HELP).stability(Stability::Alpha))?;
    registry.register(gauge.clone())?;
    let proc_root = Path::new("/proc");
    let start = read_stat(&proc_root.join("self/stat"))
        .and_then(|stat| start_time(proc_root, &stat))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs() as f64)
        });
    gauge.set(start);
    Ok(())
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss: u64,
}

fn read_stat(path: &Path) -> Option<Stat> {
    parse_stat(&fs::read_to_string(path).ok()?)
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may contain
/// spaces and parentheses itself, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state); field N (1-based, as in proc(5)) is `fields[N - 3]`.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        // A negative rss cannot happen for a live process; treat it as unreadable.
        rss: field(24)?,
    })
}

/// Boot time (`btime` in `/proc/stat`) plus the start time in clock ticks, as procfs computes
/// `StartTime()`.
fn start_time(proc_root: &Path, stat: &Stat) -> Option<f64> {
    let text = fs::read_to_string(proc_root.join("stat")).ok()?;
    let boot_time: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot_time as f64 + stat.starttime as f64 / USER_HZ)
}

/// The page size from the auxiliary vector (`AT_PAGESZ`), which the kernel hands every process;
/// 4096 if it cannot be read.
fn page_size(auxv: &Path) -> u64 {
    const AT_PAGESZ: u64 = 6;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(bytes) = fs::read(auxv) else {
        return 4096;
    };
    let word = |chunk: &[u8]| -> u64 {
        let mut buf = [0u8; WORD];
        buf.copy_from_slice(chunk);
        usize::from_ne_bytes(buf) as u64
    };
    bytes
        .chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|(key, _)| *key == AT_PAGESZ)
        .map_or(4096, |(_, value)| value)
}

/// The number of open file descriptors. On a real procfs since Linux 6.2 the size of the `fd`
/// directory is that number (procfs's fast path); otherwise the entries are counted.
fn open_fds(fd_dir: &Path, real_procfs: bool) -> Option<usize> {
    if real_procfs
        && let Ok(meta) = fs::metadata(fd_dir)
        && meta.len() > 0
    {
        return Some(meta.len() as usize);
    }
    Some(fs::read_dir(fd_dir).ok()?.count())
}

/// The soft limits we use from `/proc/<pid>/limits`.
#[derive(Debug, PartialEq)]
struct Limits {
    open_files: u64,
    address_space: u64,
}

fn read_limits(path: &Path) -> Option<Limits> {
    parse_limits(&fs::read_to_string(path).ok()?)
}

fn parse_limits(text: &str) -> Option<Limits> {
    let soft = |name: &str| -> Option<u64> {
        let rest = text.lines().find_map(|line| line.strip_prefix(name))?;
        match rest.split_whitespace().next()? {
            // procfs reads "unlimited" as the largest uint64.
            "unlimited" => Some(u64::MAX),
            n => n.parse().ok(),
        }
    };
    Some(Limits {
        open_files: soft("Max open files")?,
        address_space: soft("Max address space")?,
    })
}

fn read_netstat(path: &Path) -> Option<(f64, f64)> {
    Some(parse_netstat(&fs::read_to_string(path).ok()?))
}

/// `InOctets` and `OutOctets` of the `IpExt` section of `/proc/<pid>/net/netstat` (counters of
/// the network namespace), 0 where absent, as the Go collector reports them.
fn parse_netstat(text: &str) -> (f64, f64) {
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some(values) = lines.next() else { break };
        let (Some(names), Some(values)) =
            (header.strip_prefix("IpExt:"), values.strip_prefix("IpExt:"))
        else {
            continue;
        };
        let mut received = 0.0;
        let mut sent = 0.0;
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            match name {
                "InOctets" => received = value.parse().unwrap_or(0.0),
                "OutOctets" => sent = value.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        return (received, sent);
    }
    (0.0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 130 0 0 20 0 8 0 98765 123456789 2500 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 130,
                starttime: 98765,
                vsize: 123456789,
                rss: 2500,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn limits_soft_values() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1048576              1048576              files     \n\
                    Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(
            parse_limits(text),
            Some(Limits {
                open_files: 1048576,
                address_space: u64::MAX,
            })
        );
    }

    #[test]
    fn netstat_ip_ext_octets() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 0\n\
                    IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 1234 5678\n";
        assert_eq!(parse_netstat(text), (1234.0, 5678.0));
        assert_eq!(parse_netstat("TcpExt: A\nTcpExt: 1\n"), (0.0, 0.0));
    }
}
