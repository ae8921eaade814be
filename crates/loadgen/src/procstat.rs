//! The server's CPU time and peak memory, read from `/proc/PID/stat` and `/proc/PID/status`.

use std::fs;
use std::io;
use std::time::Duration;

/// What the server used over the measured phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerUsage {
    /// CPU time in user space.
    pub user: Duration,
    /// CPU time in the kernel on the server's behalf.
    pub system: Duration,
    /// Peak resident set size (`VmHWM`) at the end, in KiB.
    pub peak_rss_kib: u64,
}

/// CPU times in clock ticks, as `/proc/PID/stat` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub(crate) user: u64,
    pub(crate) system: u64,
}

/// Watches one process: CPU times at the start, the difference and the peak RSS at the end.
#[derive(Debug)]
pub(crate) struct Monitor {
    pid: u32,
    start: Ticks,
}

impl Monitor {
    /// What the server used since `monitor` started, if the run watches a server.
    ///
    /// # Errors
    ///
    /// [`Error::Proc`] if its `/proc` files cannot be read.
    pub(crate) fn usage(monitor: Option<&Self>) -> Result<Option<ServerUsage>, crate::Error> {
        monitor
            .map(Self::finish)
            .transpose()
            .map_err(crate::Error::Proc)
    }

    /// Takes the starting CPU times of `pid`.
    pub(crate) fn start(pid: u32) -> io::Result<Self> {
        Ok(Self {
            pid,
            start: read_ticks(pid)?,
        })
    }

    /// The CPU time used since [`start`](Self::start), and the peak RSS so far.
    pub(crate) fn finish(&self) -> io::Result<ServerUsage> {
        let end = read_ticks(self.pid)?;
        let peak_rss_kib = read_peak_rss_kib(self.pid)?;
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        let seconds = |ticks: u64| Duration::from_secs_f64(ticks as f64 / per_second as f64);
        Ok(ServerUsage {
            user: seconds(end.user.saturating_sub(self.start.user)),
            system: seconds(end.system.saturating_sub(self.start.system)),
            peak_rss_kib,
        })
    }
}

fn read_ticks(pid: u32) -> io::Result<Ticks> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| annotate(e, &path))?;
    parse_stat(&text).ok_or_else(|| invalid(&path))
}

fn read_peak_rss_kib(pid: u32) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| annotate(e, &path))?;
    parse_vm_hwm(&text).ok_or_else(|| invalid(&path))
}

/// `utime` and `stime`, fields 14 and 15 of `/proc/PID/stat`.
///
/// Field 2, the command name, is in parentheses and may itself hold spaces and parentheses,
/// so the fields are counted from the *last* `)`: the next one is field 3.
pub(crate) fn parse_stat(text: &str) -> Option<Ticks> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(14 - 3);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(Ticks { user, system })
}

/// The `VmHWM:   12000 kB` line of `/proc/PID/status`.
pub(crate) fn parse_vm_hwm(text: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_ascii_whitespace();
    let value = words.next()?.parse().ok()?;
    // The kernel has only ever written kB here; anything else is not what we think it is.
    (words.next()? == "kB").then_some(value)
}

fn annotate(error: io::Error, path: &str) -> io::Error {
    io::Error::new(error.kind(), format!("cannot read {path}: {error}"))
}

fn invalid(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} is not in the expected format"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 167 0 0 0 123 456 0 0 20 0 3 0";
        assert_eq!(
            parse_stat(line),
            Some(Ticks {
                user: 123,
                system: 456
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tserver\nVmPeak:\t  20000 kB\nVmHWM:\t   12000 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12000));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t12 MB\n"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let monitor = Monitor::start(std::process::id()).unwrap();
        let usage = monitor.finish().unwrap();
        assert!(usage.peak_rss_kib > 0);
    }
}
