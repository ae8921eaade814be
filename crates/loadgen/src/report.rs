//! What a run measured: the machine-readable `result` line and the human summary.

use crate::{ServerUsage, Workload};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

/// Bytes in a GiB, for the server's CPU seconds per GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// What one run measured.
///
/// For ping-pong, messages are the replies completed in the measured phase; for bulk, lines
/// (and `bytes` the reply bytes verified); for storm, connections completed. Errors:
///
/// - `mismatches`: connections that received a byte that was not the one owed (the connection
///   is closed at the first one, since nothing after it can be lined up any more);
/// - `resets`: read, write or connect errors, and an end of stream while nothing was owed but
///   the run was not done with the connection;
/// - `short`: connections that ended (end of stream, or the end-of-run wait ran out) with
///   replies still owed; for bulk, also those whose replies all came but whose end of stream
///   did not follow soon after (the server owes the close after the client's half-close).
#[derive(Clone, Debug)]
pub struct Report {
    /// What ran.
    pub workload: Workload,
    /// The measured time: the duration for timed runs (less if every connection failed
    /// earlier); for bulk, start to the last connection done (every reply verified, or failed).
    pub elapsed: Duration,
    /// Messages completed and verified in the measured phase.
    pub messages: u64,
    /// Reply bytes of those messages.
    pub bytes: u64,
    /// Latency per message in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Connections that received bytes other than those owed.
    pub mismatches: u64,
    /// Connection errors.
    pub resets: u64,
    /// Connections that ended with replies owed.
    pub short: u64,
    /// The server's usage over the measured phase, when its pid was given.
    pub server: Option<ServerUsage>,
}

impl Report {
    /// All errors counted.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.mismatches + self.resets + self.short
    }

    /// Whether the run counted no error.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.errors() == 0
    }

    /// Messages per second over the measured time.
    #[must_use]
    pub fn msgs_per_sec(&self) -> f64 {
        per_second(self.messages as f64, self.elapsed)
    }

    /// Reply megabytes (10^6 bytes) per second over the measured time.
    #[must_use]
    pub fn mb_per_sec(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// The latency at `quantile` (0.5 for the median) in microseconds; 0 with no messages.
    #[must_use]
    pub fn latency_us(&self, quantile: f64) -> f64 {
        if self.latency_ns.is_empty() {
            0.0
        } else {
            self.latency_ns.value_at_quantile(quantile) as f64 / 1e3
        }
    }

    /// The longest latency in microseconds; 0 with no messages.
    #[must_use]
    pub fn max_latency_us(&self) -> f64 {
        self.latency_ns.max() as f64 / 1e3
    }

    /// The one machine-readable line: `result` and space-separated `key=value` pairs, values
    /// without spaces. Workload keys first (`mode`, `connections`, then `size` and `depth`;
    /// `line` and `mib`; or `concurrency` and `size`), then `secs messages bytes msgs_per_sec
    /// mb_per_sec p50_us p99_us p999_us max_us mismatches resets short`, then, with the server's
    /// pid, `server_user_s server_sys_s server_user_us_per_msg server_cpu_us_per_msg
    /// server_cpu_s_per_gib server_peak_rss_kib` (per-message and per-GiB figures are 0 when
    /// nothing was measured).
    #[must_use]
    pub fn result_line(&self) -> String {
        let mut line = format!("result mode={}", self.workload.name());
        // Writing to a String cannot fail.
        let _ = match &self.workload {
            Workload::PingPong(p) => write!(
                line,
                " connections={} size={} depth={}",
                p.connections, p.size, p.depth
            ),
            Workload::Bulk(b) => write!(
                line,
                " connections={} line={} mib={}",
                b.connections,
                b.line,
                b.bytes_per_connection as f64 / (1u64 << 20) as f64
            ),
            // A storm's connections are its concurrency: how many are open at once.
            Workload::Storm(s) => write!(
                line,
                " connections={} concurrency={} size={}",
                s.concurrency, s.concurrency, s.size
            ),
        };
        let _ = write!(
            line,
            " secs={:.3} messages={} bytes={} msgs_per_sec={:.1} mb_per_sec={:.2} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} mismatches={} resets={} short={}",
            self.elapsed.as_secs_f64(),
            self.messages,
            self.bytes,
            self.msgs_per_sec(),
            self.mb_per_sec(),
            self.latency_us(0.5),
            self.latency_us(0.99),
            self.latency_us(0.999),
            self.max_latency_us(),
            self.mismatches,
            self.resets,
            self.short,
        );
        if let Some(server) = &self.server {
            let figures = self.server_figures(server);
            let _ = write!(
                line,
                " server_user_s={:.3} server_sys_s={:.3} server_user_us_per_msg={:.2} server_cpu_us_per_msg={:.2} server_cpu_s_per_gib={:.3} server_peak_rss_kib={}",
                server.user.as_secs_f64(),
                server.system.as_secs_f64(),
                figures.user_us_per_msg,
                figures.cpu_us_per_msg,
                figures.cpu_s_per_gib,
                server.peak_rss_kib,
            );
        }
        line
    }

    /// A few lines for people, for stderr.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut text = match &self.workload {
            Workload::PingPong(p) => format!(
                "pingpong: {} connections, {}-byte lines, depth {}",
                p.connections, p.size, p.depth
            ),
            Workload::Bulk(b) => format!(
                "bulk: {} connections, {} bytes each in {}-byte lines",
                b.connections,
                b.lines() * b.line as u64,
                b.line
            ),
            Workload::Storm(s) => format!(
                "storm: {} connections at a time, one {}-byte line each",
                s.concurrency, s.size
            ),
        };
        let _ = write!(
            text,
            ", {:.3} s measured\n  {} messages ({:.1}/s), {:.2} MB of replies ({:.2} MB/s)\n  latency: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us\n  errors: {} mismatches, {} resets, {} short",
            self.elapsed.as_secs_f64(),
            self.messages,
            self.msgs_per_sec(),
            self.bytes as f64 / 1e6,
            self.mb_per_sec(),
            self.latency_us(0.5),
            self.latency_us(0.99),
            self.latency_us(0.999),
            self.max_latency_us(),
            self.mismatches,
            self.resets,
            self.short,
        );
        if let Some(server) = &self.server {
            let figures = self.server_figures(server);
            let _ = write!(
                text,
                "\n  server: user {:.3} s, system {:.3} s; {:.2} us user and {:.2} us CPU per message, {:.3} CPU s per GiB; peak RSS {} KiB",
                server.user.as_secs_f64(),
                server.system.as_secs_f64(),
                figures.user_us_per_msg,
                figures.cpu_us_per_msg,
                figures.cpu_s_per_gib,
                server.peak_rss_kib,
            );
        }
        text
    }

    fn server_figures(&self, server: &ServerUsage) -> ServerFigures {
        let user = server.user.as_secs_f64();
        let cpu = user + server.system.as_secs_f64();
        let per_message = |seconds: f64| {
            if self.messages == 0 {
                0.0
            } else {
                seconds * 1e6 / self.messages as f64
            }
        };
        ServerFigures {
            user_us_per_msg: per_message(user),
            cpu_us_per_msg: per_message(cpu),
            cpu_s_per_gib: if self.bytes == 0 {
                0.0
            } else {
                cpu / (self.bytes as f64 / GIB)
            },
        }
    }
}

struct ServerFigures {
    user_us_per_msg: f64,
    cpu_us_per_msg: f64,
    cpu_s_per_gib: f64,
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}
