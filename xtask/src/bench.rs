//! `cargo xtask bench`: measures our server against an idiomatic tokio server and a
//! single-threaded epoll loop with the verifying load generator, and writes the medians as a
//! markdown table, every raw result, and a chart of throughput and p99 against connection count.
//!
//! The steps:
//!
//! 1. `cargo build --release -p server -p loadgen -p baselines`, then find `server`, `loadgen`,
//!    `chart`, `tokio-server` and `epoll-server` in the release directory;
//! 2. for each round, each workload, each server (interleaved, so that a slow patch of a noisy
//!    machine spreads over all three servers instead of landing on one): start the server fresh
//!    on port 0, read its address from its `listening on 127.0.0.1:PORT` line, run `loadgen`
//!    against it (or, for `idle`, measure its CPU time while nothing happens), stop it with
//!    SIGTERM and wait for it;
//! 3. take the median of each metric per workload and server, print the table and write
//!    `results.md`, `raw.txt`, `sweep.txt` and, from the sweep, `chart.svg` (drawn by `chart`).
//!
//! Every child process runs under a deadline and is killed and reported when it passes it, and
//! every server is killed on the error paths (a guard kills it when dropped), so a hung server
//! or load generator fails one run, never hangs the bench. A failed run is reported at once,
//! with the command that failed and what it wrote to stderr, and left out of the medians; the
//! bench goes on with the next run and exits 1 at the end.

use crate::process::{
    KillOnDrop, ServerLog, Stop, capture_output, collect, parse_listening, target_dir, wait_until,
};
use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Rounds when `--rounds` is not given (and not `--quick`).
const DEFAULT_ROUNDS: usize = 3;

/// Where the results go when `--out` is not given, relative to the workspace root.
const DEFAULT_OUT: &str = "target/bench";

/// The length of a timed run (ping-pong, storm) and of the idle window, in seconds.
const FULL_SECS: u32 = 5;

/// The same with `--quick`.
const QUICK_SECS: u32 = 2;

/// MiB each bulk connection sends.
const FULL_BULK_MIB: u32 = 64;

/// The same with `--quick`.
const QUICK_BULK_MIB: u32 = 8;

/// The connection counts of the sweep that `chart` draws.
const SWEEP_CONNECTIONS: [u32; 4] = [1, 8, 64, 512];

/// `loadgen`'s default warm-up before a timed ping-pong run, for its deadline.
const WARMUP_SECS: f64 = 1.0;

/// The slowest bulk transfer the deadline allows for, in MiB/s: far below any working server,
/// so that only a stuck run is cut short.
const BULK_FLOOR_MIB_PER_SEC: f64 = 20.0;

/// What a `loadgen` run may take beyond twice its expected length: connection set-up, the
/// final drain, a loaded machine.
const LOADGEN_SLACK: Duration = Duration::from_secs(30);

/// How long the release build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a server may take to print its `listening on` line once started.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `chart` may take to draw a few dozen points.
const CHART_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a small helper (`kill`, `nproc`, `uname`, `getconf`) may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the idle workload's one exchange may take, per step.
const IDLE_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for the last output of a process that has exited or been killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How many of a process's last stderr lines a failure report shows.
const SHOWN_LINES: usize = 40;

/// How many of a server's stderr lines are kept for a failure report: a chatty server must not
/// grow the bench's memory without bound.
const KEPT_LINES: usize = 200;

/// The clock tick `/proc/PID/stat` counts in when `getconf CLK_TCK` cannot say: `USER_HZ`, 100
/// on every Linux architecture in use.
const DEFAULT_CLOCK_TICKS: u64 = 100;

/// The line the idle workload sends before it starts measuring, and the reply it expects.
const IDLE_LINE: &[u8] = b"idle bench check\n";
const IDLE_REPLY: &[u8] = b"kcehc hcneb eldi\n";

/// Bytes in a GiB, for CPU seconds per GiB.
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What stands in a table cell with no value.
const NONE: &str = "—";

/// Runs `cargo xtask bench ARGS` from the workspace at `root`: exit 0 if every run passed, 1 if
/// one failed (after the table of the others) or the bench could not run, 2 on a bad command
/// line (one `error:` line).
pub(crate) fn command(root: &Path, args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", super::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: bench: {message} (see `cargo xtask help`)");
            return ExitCode::from(2);
        }
    };
    let outcome = if options.render {
        render(root, &options).map(|()| Vec::new())
    } else {
        run(root, &options)
    };
    match outcome {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!(
                "error: bench: {} failure(s) (a run without figures is left out of the medians):",
                failures.len()
            );
            for failure in &failures {
                // The first line names the run and what failed; the details were shown above.
                let first = failure.lines().next().unwrap_or_default();
                eprintln!("  {first}");
            }
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("error: bench: {err}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command line.

/// What `bench` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// One round, short runs, less bulk data: a check that everything works, not a measurement.
    quick: bool,
    rounds: usize,
    /// The output directory; `None` for [`DEFAULT_OUT`] under the workspace root.
    out: Option<PathBuf>,
    /// A workload name, or `sweep` for the sweep's workloads; `None` for all.
    only: Option<String>,
    /// Run nothing: write `results.md` and `sweep.txt` anew from the output directory's
    /// `raw.txt`, keeping the header line of its `results.md`.
    render: bool,
}

impl Options {
    /// Where the files go: `--out`, or [`DEFAULT_OUT`] under the workspace root.
    fn out_dir(&self, root: &Path) -> PathBuf {
        self.out.clone().unwrap_or_else(|| root.join(DEFAULT_OUT))
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Run(Options),
    Help,
}

/// Parses the arguments after `bench`. Options take their value as the next argument or after
/// `=` (`--rounds 5`, `--rounds=5`).
///
/// # Errors
///
/// A one-line message naming the argument that is wrong.
fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let mut quick = false;
    let mut rounds = None;
    let mut out = None;
    let mut only = None;
    let mut render = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-h" | "--help" if inline.is_none() => return Ok(Parsed::Help),
            "--quick" | "--render" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                let switch = if flag == "--quick" {
                    &mut quick
                } else {
                    &mut render
                };
                if std::mem::replace(switch, true) {
                    return Err(format!("{flag} given twice"));
                }
            }
            "--rounds" | "--out" | "--only" => {
                let value = match inline {
                    Some(value) => value,
                    None => args
                        .next()
                        .ok_or_else(|| format!("{flag} needs a value"))?
                        .as_str(),
                };
                if value.is_empty() {
                    return Err(format!("{flag} needs a non-empty value"));
                }
                let already = match flag {
                    "--rounds" => rounds.replace(parse_rounds(value)?).is_some(),
                    "--out" => out.replace(PathBuf::from(value)).is_some(),
                    _ => only.replace(parse_only(value)?).is_some(),
                };
                if already {
                    return Err(format!("{flag} given twice"));
                }
            }
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    if render && (quick || rounds.is_some() || only.is_some()) {
        return Err("--render takes only --out: the runs are those in raw.txt".to_owned());
    }
    Ok(Parsed::Run(Options {
        quick,
        rounds: rounds.unwrap_or(if quick { 1 } else { DEFAULT_ROUNDS }),
        out,
        only,
        render,
    }))
}

/// The value of `--rounds`: a whole number from 1 on.
///
/// # Errors
///
/// If it is not one.
fn parse_rounds(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(rounds) if rounds >= 1 => Ok(rounds),
        _ => Err(format!(
            "--rounds needs a whole number of at least 1, got `{value}`"
        )),
    }
}

/// The value of `--only`: a workload's name, or `sweep`.
///
/// # Errors
///
/// If it is neither, with the names there are.
fn parse_only(value: &str) -> Result<String, String> {
    let names: Vec<&str> = workloads(false).iter().map(|w| w.name).collect();
    if value == "sweep" || names.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "--only: no workload `{value}`; there are {} and sweep",
            names.join(", ")
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The servers and the workloads.

/// The servers compared, in the order they run within a round and appear in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Ours,
    Tokio,
    Epoll,
}

impl ServerKind {
    const ALL: [Self; 3] = [Self::Ours, Self::Tokio, Self::Epoll];

    /// The name in the table, `raw.txt` and `sweep.txt`.
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Tokio => "tokio",
            Self::Epoll => "epoll",
        }
    }

    /// The binary's name in the release directory.
    fn binary(self) -> &'static str {
        match self {
            Self::Ours => "server",
            Self::Tokio => "tokio-server",
            Self::Epoll => "epoll-server",
        }
    }

    /// The arguments: quiet, any port, and for ours no `exit` line, since a load generator's
    /// line could happen to be one.
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Ours => &["-q", "--exit", "off", "0"],
            Self::Tokio | Self::Epoll => &["-q", "0"],
        }
    }
}

/// What a workload's CPU figures are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuUnit {
    /// µs per message (reply).
    PerMsg,
    /// µs per connection (storm: one message per connection).
    PerConn,
    /// s per GiB of replies (bulk).
    PerGib,
    /// % of one core (idle).
    PercentCore,
}

/// How a workload is run.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `loadgen` with these arguments after `--addr ADDR --server-pid PID`.
    Load {
        args: Vec<String>,
        /// How long the run should take, for its deadline.
        expected_secs: f64,
    },
    /// One exchange, then the server's CPU time over this many seconds of nothing.
    Idle { secs: u32 },
}

/// One workload of the bench.
#[derive(Debug, Clone, PartialEq)]
struct Workload {
    /// Its name in the table, in `raw.txt` and for `--only`.
    name: &'static str,
    kind: Kind,
    unit: CpuUnit,
    /// Whether it has a row in the main table (the sweep's own points have a table of their
    /// own).
    in_table: bool,
    /// Its connection count, if it is a point of the sweep.
    sweep: Option<u32>,
}

impl Workload {
    /// How long its `loadgen` may run before it is killed.
    fn deadline(&self) -> Duration {
        match &self.kind {
            Kind::Load { expected_secs, .. } => {
                Duration::from_secs_f64(2.0 * expected_secs) + LOADGEN_SLACK
            }
            Kind::Idle { secs } => Duration::from_secs(u64::from(*secs)) + LOADGEN_SLACK,
        }
    }
}

/// Every workload, in the order they run and appear: the table's, then the sweep's points that
/// are not already among them.
fn workloads(quick: bool) -> Vec<Workload> {
    let secs = if quick { QUICK_SECS } else { FULL_SECS };
    let mib = if quick { QUICK_BULK_MIB } else { FULL_BULK_MIB };
    // `in_table` is false for the sweep's own points, which have a table of their own.
    let pingpong = |name, connections: u32, size: u32, depth: Option<u32>, in_table| {
        let mut args = vec![
            "pingpong".to_owned(),
            "--connections".to_owned(),
            connections.to_string(),
            "--size".to_owned(),
            size.to_string(),
        ];
        if let Some(depth) = depth {
            args.extend(["--depth".to_owned(), depth.to_string()]);
        }
        args.extend(["--duration".to_owned(), secs.to_string()]);
        let in_sweep = size == 64 && depth.is_none() && SWEEP_CONNECTIONS.contains(&connections);
        Workload {
            name,
            kind: Kind::Load {
                args,
                expected_secs: WARMUP_SECS + f64::from(secs),
            },
            unit: CpuUnit::PerMsg,
            in_table,
            sweep: in_sweep.then_some(connections),
        }
    };
    let bulk_connections = 8;
    vec![
        pingpong("1x64", 1, 64, None, true),
        pingpong("64x64", 64, 64, None, true),
        pingpong("64x512d4", 64, 512, Some(4), true),
        pingpong("1000x64", 1000, 64, None, true),
        Workload {
            name: "bulk8x64MiB",
            kind: Kind::Load {
                args: [
                    "bulk",
                    "--connections",
                    &bulk_connections.to_string(),
                    "--mib",
                    &mib.to_string(),
                    "--line",
                    "100",
                ]
                .map(str::to_owned)
                .to_vec(),
                expected_secs: f64::from(bulk_connections * mib) / BULK_FLOOR_MIB_PER_SEC,
            },
            unit: CpuUnit::PerGib,
            in_table: true,
            sweep: None,
        },
        Workload {
            name: "storm",
            kind: Kind::Load {
                args: [
                    "storm",
                    "--concurrency",
                    "8",
                    "--duration",
                    &secs.to_string(),
                ]
                .map(str::to_owned)
                .to_vec(),
                expected_secs: f64::from(secs),
            },
            unit: CpuUnit::PerConn,
            in_table: true,
            sweep: None,
        },
        Workload {
            name: "idle",
            kind: Kind::Idle { secs },
            unit: CpuUnit::PercentCore,
            in_table: true,
            sweep: None,
        },
        pingpong("8x64", 8, 64, None, false),
        pingpong("512x64", 512, 64, None, false),
    ]
}

/// The workloads `--only` picks out of `all`: the one named, the sweep's for `sweep`, all for
/// `None`.
fn select(all: Vec<Workload>, only: Option<&str>) -> Vec<Workload> {
    match only {
        None => all,
        Some("sweep") => all.into_iter().filter(|w| w.sweep.is_some()).collect(),
        Some(name) => all.into_iter().filter(|w| w.name == name).collect(),
    }
}

/// Whether `selected` holds every point of the sweep, so that there is a chart to draw.
fn has_full_sweep(selected: &[Workload]) -> bool {
    SWEEP_CONNECTIONS
        .iter()
        .all(|c| selected.iter().any(|w| w.sweep == Some(*c)))
}

// ---------------------------------------------------------------------------------------------
// The run.

/// The binaries the bench runs, in the release directory.
struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Checks that every binary is in `dir`.
    ///
    /// # Errors
    ///
    /// Naming the first one missing.
    fn find(dir: PathBuf) -> Result<Self, String> {
        let binaries = Self { dir };
        let names = ServerKind::ALL
            .map(ServerKind::binary)
            .into_iter()
            .chain(["loadgen", "chart"]);
        for name in names {
            let path = binaries.path(name);
            if !path.is_file() {
                return Err(format!(
                    "the release build succeeded but there is no {}",
                    path.display()
                ));
            }
        }
        Ok(binaries)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{}", env::consts::EXE_SUFFIX))
    }
}

/// What every run needs.
struct Context {
    binaries: Binaries,
    /// What `loadgen --congestion` gets, if anything.
    client_congestion: Option<String>,
    /// The clock ticks per second of `/proc/PID/stat`.
    clock_ticks: u64,
}

/// One run: a round, a workload, a server.
struct Run<'a> {
    round: usize,
    workload: &'a Workload,
    server: ServerKind,
}

impl Run<'_> {
    /// The run in words, for messages.
    fn label(&self) -> String {
        format!(
            "round {} {} {}",
            self.round,
            self.workload.name,
            self.server.name()
        )
    }

    /// The start of its line in `raw.txt`.
    fn raw_prefix(&self) -> String {
        format!(
            "round={} workload={} server={}",
            self.round,
            self.workload.name,
            self.server.name()
        )
    }
}

/// What a run gave.
#[derive(Default)]
struct RunOutcome {
    /// The figures, if the measurement succeeded.
    metrics: Option<Metrics>,
    /// Its line for `raw.txt`, if it got as far as a result.
    raw: Option<String>,
    /// What went wrong, each a message that starts by naming the run.
    errors: Vec<String>,
}

/// One run's figures, kept for the medians.
struct Record {
    workload: &'static str,
    server: ServerKind,
    /// `None` if the run failed.
    metrics: Option<Metrics>,
}

/// Builds, runs every workload, and writes the results.
///
/// # Errors
///
/// If the bench cannot run at all (the build fails, a binary is missing, the output cannot be
/// written). The failures of single runs are returned instead, after the results are written.
fn run(root: &Path, options: &Options) -> Result<Vec<String>, String> {
    let selected = select(workloads(options.quick), options.only.as_deref());
    let out_dir = options.out_dir(root);
    fs::create_dir_all(&out_dir)
        .map_err(|err| format!("could not create {}: {err}", out_dir.display()))?;
    build(root)?;
    let release = target_dir(root, env::var_os("CARGO_TARGET_DIR")).join("release");
    let machine = Machine::probe();
    let context = Context {
        binaries: Binaries::find(release)?,
        client_congestion: machine.client_congestion.clone(),
        clock_ticks: clock_ticks(),
    };
    let date = utc_date(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let header = header_line(&machine, &date, options);
    eprintln!("bench: {header}");

    let raw_path = out_dir.join("raw.txt");
    let mut raw = File::create(&raw_path)
        .map_err(|err| format!("could not create {}: {err}", raw_path.display()))?;
    let mut records = Vec::new();
    let mut failures = Vec::new();
    let total = options.rounds * selected.len() * ServerKind::ALL.len();
    let mut done = 0;
    for round in 1..=options.rounds {
        for workload in &selected {
            // The order turns each round, so that no server is always the one that runs first
            // (after the build, or after another's connections linger in TIME_WAIT).
            for server in rotated(ServerKind::ALL, round - 1) {
                done += 1;
                let run = Run {
                    round,
                    workload,
                    server,
                };
                let outcome = run_one(&context, &run);
                if let Some(line) = &outcome.raw {
                    // Written as the runs go, so that an interrupted bench keeps what it did.
                    writeln!(raw, "{line}")
                        .and_then(|()| raw.flush())
                        .map_err(|err| format!("could not write {}: {err}", raw_path.display()))?;
                }
                let summary = outcome.metrics.as_ref().map_or_else(
                    || "FAILED".to_owned(),
                    |m| progress_summary(m, workload.unit),
                );
                eprintln!(
                    "bench: [{done}/{total}] round {round}/{} {} {}: {summary}",
                    options.rounds,
                    workload.name,
                    server.name()
                );
                for error in &outcome.errors {
                    eprintln!("error: {error}");
                }
                failures.extend(outcome.errors);
                records.push(Record {
                    workload: workload.name,
                    server,
                    metrics: outcome.metrics,
                });
            }
        }
    }

    let rows = summarize(&selected, &records);
    let report = write_report(&out_dir, &header, &selected, &rows, options.rounds)?;
    print!("{}", report.text);
    let mut written = vec![report.results, raw_path];

    if let Some(sweep_path) = report.sweep {
        written.push(sweep_path.clone());
        let chart_path = out_dir.join("chart.svg");
        let title = format!("64 B ping-pong by connections ({}, {date})", machine.model);
        match draw_chart(&context.binaries, &sweep_path, &chart_path, &title) {
            Ok(()) => written.push(chart_path),
            Err(err) => {
                eprintln!("error: {err}");
                failures.push(err);
            }
        }
    }
    let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!("bench: wrote {}", written.join(", "));
    Ok(failures)
}

/// What [`write_report`] wrote.
struct Report {
    /// The text of `results.md`.
    text: String,
    results: PathBuf,
    /// `sweep.txt`, written when `selected` holds the whole sweep.
    sweep: Option<PathBuf>,
}

/// Writes `results.md`, and `sweep.txt` if `selected` holds the whole sweep, to `out_dir`.
///
/// # Errors
///
/// If a file cannot be written.
fn write_report(
    out_dir: &Path,
    header: &str,
    selected: &[Workload],
    rows: &[Row],
    rounds: usize,
) -> Result<Report, String> {
    let write = |path: &Path, text: &str| {
        fs::write(path, text).map_err(|err| format!("could not write {}: {err}", path.display()))
    };
    let text = results_markdown(header, selected, rows, rounds);
    let results = out_dir.join("results.md");
    write(&results, &text)?;
    let sweep = if has_full_sweep(selected) {
        let path = out_dir.join("sweep.txt");
        write(&path, &sweep_text(selected, rows))?;
        Some(path)
    } else {
        None
    };
    Ok(Report {
        text,
        results,
        sweep,
    })
}

/// `--render`: writes `results.md` (and `sweep.txt`, with the whole sweep) anew from the
/// output directory's `raw.txt`, so that a change to the report can be applied to a run that
/// took half an hour. The header line of the `results.md` there is kept.
///
/// # Errors
///
/// If `raw.txt` cannot be read or has a line that is not a run's, or the files cannot be
/// written.
fn render(root: &Path, options: &Options) -> Result<(), String> {
    let out_dir = options.out_dir(root);
    let raw_path = out_dir.join("raw.txt");
    let raw = fs::read_to_string(&raw_path)
        .map_err(|err| format!("could not read {}: {err}", raw_path.display()))?;
    let all = workloads(false);
    let mut records = Vec::new();
    let mut rounds = 0;
    for (n, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (round, record) = parse_raw_line(line, &all)
            .map_err(|err| format!("{} line {}: {err}", raw_path.display(), n + 1))?;
        rounds = rounds.max(round);
        records.push(record);
    }
    let selected: Vec<Workload> = all
        .into_iter()
        .filter(|w| records.iter().any(|r| r.workload == w.name))
        .collect();
    let results_path = out_dir.join("results.md");
    let header = fs::read_to_string(&results_path)
        .ok()
        .and_then(|text| text.lines().next().map(str::to_owned))
        .filter(|line| !line.trim().is_empty())
        .unwrap_or_else(|| format!("Rendered from {}.", raw_path.display()));
    let rows = summarize(&selected, &records);
    let report = write_report(&out_dir, &header, &selected, &rows, rounds)?;
    let written: Vec<String> = [Some(report.results), report.sweep]
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    eprintln!(
        "bench: wrote {} from {} runs in {}",
        written.join(", "),
        records.len(),
        raw_path.display()
    );
    Ok(())
}

/// One line of `raw.txt` (`round=R workload=W server=S status=ok|failed` and the run's
/// figures) as its round and its record; a failed run's record has no figures.
///
/// # Errors
///
/// If a word is not `key=value`, or the round, workload, server or status is missing or
/// unknown, or an `ok` run lacks a figure.
fn parse_raw_line(line: &str, all: &[Workload]) -> Result<(usize, Record), String> {
    let words = ResultLine::parse(&format!("result {line}"))?;
    let round = words
        .get("round")
        .and_then(|r| r.parse::<usize>().ok())
        .ok_or("no round number")?;
    let name = words.get("workload").ok_or("no workload")?;
    let workload = all
        .iter()
        .find(|w| w.name == name)
        .ok_or_else(|| format!("no workload `{name}`"))?;
    let server = ServerKind::ALL
        .into_iter()
        .find(|s| words.get("server") == Some(s.name()))
        .ok_or("no known server")?;
    let metrics = match words.get("status") {
        Some("ok") if workload.unit == CpuUnit::PercentCore => Some(Metrics::from_idle(&words)?),
        Some("ok") => Some(Metrics::from_result(&words, workload.unit)?),
        Some("failed") => None,
        _ => return Err("no status=ok or status=failed".to_owned()),
    };
    Ok((
        round,
        Record {
            workload: workload.name,
            server,
            metrics,
        },
    ))
}

/// Runs `cargo build --release -p server -p loadgen -p baselines`, its output going to ours.
///
/// # Errors
///
/// If cargo cannot be run, fails, or takes longer than [`BUILD_TIMEOUT`].
fn build(root: &Path) -> Result<(), String> {
    // `cargo xtask` runs under cargo, which says in CARGO which cargo it is.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let args = [
        "build",
        "--release",
        "-p",
        "server",
        "-p",
        "loadgen",
        "-p",
        "baselines",
    ];
    let shown = format!("cargo {}", args.join(" "));
    let child = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|err| format!("could not run {}: {err}", cargo.to_string_lossy()))?;
    let mut child = KillOnDrop(child);
    match wait_until(&mut child.0, Instant::now() + BUILD_TIMEOUT) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("`{shown}` failed ({status})")),
        Ok(None) => Err(format!(
            "`{shown}` did not finish within {} min (killed it)",
            BUILD_TIMEOUT.as_secs() / 60
        )),
        Err(err) => Err(format!("could not wait for `{shown}`: {err}")),
    }
}

/// Starts the run's server, measures, and stops the server.
fn run_one(context: &Context, run: &Run<'_>) -> RunOutcome {
    let mut outcome = RunOutcome::default();
    let binary = context.binaries.path(run.server.binary());
    let mut server = match ServerProcess::start(&binary, run.server) {
        Ok(server) => server,
        Err(err) => {
            outcome.errors.push(format!("{}: {err}", run.label()));
            return outcome;
        }
    };
    let measured = match &run.workload.kind {
        Kind::Load { args, .. } => run_load(context, run, &server, args, &mut outcome.raw),
        Kind::Idle { secs } => measure_idle(context, &server, *secs).map(|(metrics, pairs)| {
            outcome.raw = Some(format!("{} status=ok {pairs}", run.raw_prefix()));
            metrics
        }),
    };
    let stopped = server.stop();
    let mut errors = Vec::new();
    match measured {
        Ok(metrics) => outcome.metrics = Some(metrics),
        Err(err) => errors.push(err),
    }
    if let Err(err) = stopped {
        errors.push(err);
    }
    if !errors.is_empty() {
        outcome.errors.push(format!(
            "{}: {}{}",
            run.label(),
            errors.join("; and "),
            server.stderr_note()
        ));
    }
    outcome
}

/// Runs `loadgen` against the server, puts its result line (if any) in `raw`, and returns the
/// figures.
///
/// # Errors
///
/// If `loadgen` cannot run, times out, exits with a failure (its stderr shown), or its result
/// line lacks a figure.
fn run_load(
    context: &Context,
    run: &Run<'_>,
    server: &ServerProcess,
    args: &[String],
    raw: &mut Option<String>,
) -> Result<Metrics, String> {
    let mut argv = vec![
        "--addr".to_owned(),
        server.addr.to_string(),
        "--server-pid".to_owned(),
        server.pid.to_string(),
    ];
    if let Some(name) = &context.client_congestion {
        argv.extend(["--congestion".to_owned(), name.clone()]);
    }
    argv.extend_from_slice(args);
    let program = context.binaries.path("loadgen");
    let shown = show_command(&program, &argv);
    let output = run_with_deadline(&program, &argv, run.workload.deadline())?;
    let line = find_result_line(&output.stdout);
    let status_word = if output.status.success() {
        "ok"
    } else {
        "failed"
    };
    if let Ok(line) = &line {
        *raw = Some(format!(
            "{} status={status_word} {}",
            run.raw_prefix(),
            line.pairs_text()
        ));
    }
    if !output.status.success() {
        return Err(format!(
            "`{shown}` exited with {}{}",
            output.status,
            stderr_tail("loadgen", &output.stderr)
        ));
    }
    line.and_then(|line| Metrics::from_result(&line, run.workload.unit))
        .map_err(|err| format!("`{shown}`: {err}{}", stderr_tail("loadgen", &output.stderr)))
}

/// The idle workload: one line exchanged and the connection closed, then the server's CPU time
/// over `secs` seconds. Returns the figures and the `key=value` pairs for `raw.txt`.
///
/// # Errors
///
/// If the exchange fails or `/proc` cannot be read.
fn measure_idle(
    context: &Context,
    server: &ServerProcess,
    secs: u32,
) -> Result<(Metrics, String), String> {
    exchange_line(server.addr)?;
    let (user_start, sys_start) = read_cpu_ticks(server.pid)?;
    let start = Instant::now();
    // The measurement window itself: the server is left alone for it.
    thread::sleep(Duration::from_secs(u64::from(secs)));
    let (user_end, sys_end) = read_cpu_ticks(server.pid)?;
    let elapsed = start.elapsed().as_secs_f64();
    let rss = read_peak_rss_kib(server.pid)?;
    let ticks = context.clock_ticks as f64;
    let user_s = user_end.saturating_sub(user_start) as f64 / ticks;
    let sys_s = sys_end.saturating_sub(sys_start) as f64 / ticks;
    let pairs = format!(
        "mode=idle secs={elapsed:.3} server_user_s={user_s:.3} server_sys_s={sys_s:.3} \
         server_cpu_pct={:.3} server_peak_rss_kib={rss}",
        100.0 * (user_s + sys_s) / elapsed
    );
    // The figures are read back from the pairs, as `--render` reads them from `raw.txt`.
    let metrics = Metrics::from_idle(&ResultLine::parse(&format!("result {pairs}"))?)?;
    Ok((metrics, pairs))
}

/// Connects to `addr`, sends [`IDLE_LINE`], expects [`IDLE_REPLY`], and closes.
///
/// # Errors
///
/// If a step fails or takes longer than [`IDLE_IO_TIMEOUT`], or the reply is wrong.
fn exchange_line(addr: SocketAddr) -> Result<(), String> {
    let fail = |what: &str, err: io::Error| format!("idle: {what} {addr}: {err}");
    let mut stream =
        TcpStream::connect_timeout(&addr, IDLE_IO_TIMEOUT).map_err(|e| fail("connect to", e))?;
    stream
        .set_read_timeout(Some(IDLE_IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IDLE_IO_TIMEOUT)))
        .map_err(|e| fail("set timeouts on the connection to", e))?;
    stream
        .write_all(IDLE_LINE)
        .map_err(|e| fail("write to", e))?;
    let mut reply = Vec::new();
    let mut buf = [0; 64];
    // Bounded by the reply's length (every read but the last adds bytes) and by the timeout.
    while reply.len() < IDLE_REPLY.len() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(err) => return Err(fail("read from", err)),
        }
    }
    if reply != IDLE_REPLY {
        return Err(format!(
            "idle: sent \"{}\" to {addr}, expected \"{}\" back, got \"{}\"",
            IDLE_LINE.escape_ascii(),
            IDLE_REPLY.escape_ascii(),
            reply.escape_ascii()
        ));
    }
    // Best effort: the close that follows ends the connection anyway.
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// The process's user and system CPU time so far, in clock ticks.
///
/// # Errors
///
/// If `/proc/PID/stat` cannot be read or parsed.
fn read_cpu_ticks(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|err| format!("could not read {path}: {err}"))?;
    parse_stat_times(&text).ok_or_else(|| format!("could not find utime and stime in {path}"))
}

/// The process's peak resident set size so far, in KiB.
///
/// # Errors
///
/// If `/proc/PID/status` cannot be read or has no `VmHWM`.
fn read_peak_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|err| format!("could not read {path}: {err}"))?;
    parse_vm_hwm(&text).ok_or_else(|| format!("could not find VmHWM in {path}"))
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line. The command name, field 2, is in
/// parentheses and may hold spaces and parentheses itself, so the fields are counted from the
/// last `)`.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state), so field N is at index N - 3.
    let mut fields = rest.split_ascii_whitespace().skip(14 - 3);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The `VmHWM:  1234 kB` figure of a `/proc/PID/status` text, in KiB.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix("VmHWM:")?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The clock ticks per second that `/proc/PID/stat` counts in, from `getconf CLK_TCK`.
fn clock_ticks() -> u64 {
    let program = Path::new("getconf");
    run_with_deadline(program, &["CLK_TCK".to_owned()], HELPER_TIMEOUT)
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| out.stdout.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(DEFAULT_CLOCK_TICKS)
}

/// Runs `chart` on the sweep.
///
/// # Errors
///
/// If it cannot run, fails (with its stderr) or times out.
fn draw_chart(binaries: &Binaries, input: &Path, output: &Path, title: &str) -> Result<(), String> {
    let program = binaries.path("chart");
    let args = [
        "--input".to_owned(),
        input.display().to_string(),
        "--output".to_owned(),
        output.display().to_string(),
        "--title".to_owned(),
        title.to_owned(),
    ];
    let shown = show_command(&program, &args);
    let out = run_with_deadline(&program, &args, CHART_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` exited with {}{}",
            out.status,
            stderr_tail("chart", &out.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The machine and the date.

/// What the header says about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    /// What `nproc` says.
    cpus: String,
    /// The `model name` of `/proc/cpuinfo`.
    model: String,
    /// What `uname -r` says.
    kernel: String,
    /// The system's default TCP congestion control.
    congestion: String,
    /// The congestion control `loadgen` sets on its sockets (see [`CLIENT_CONGESTION`]), if
    /// the kernel has it; else they keep the default.
    client_congestion: Option<String>,
}

impl Machine {
    /// Asks `nproc`, `/proc/cpuinfo` and `uname -r`; what cannot be found is `unknown`.
    fn probe() -> Self {
        let helper = |program: &str, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
            run_with_deadline(Path::new(program), &args, HELPER_TIMEOUT)
                .ok()
                .filter(|out| out.status.success())
                .map(|out| out.stdout.trim().to_owned())
                .filter(|text| !text.is_empty())
        };
        let cpus = helper("nproc", &[])
            .or_else(|| thread::available_parallelism().ok().map(|n| n.to_string()))
            .unwrap_or_else(|| "unknown".to_owned());
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model(&text))
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let kernel = helper("uname", &["-r"]).unwrap_or_else(|| "unknown".to_owned());
        let sysctl = |name: &str| fs::read_to_string(Path::new("/proc/sys/net/ipv4").join(name));
        let congestion = sysctl("tcp_congestion_control")
            .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned());
        let client_congestion = sysctl("tcp_available_congestion_control")
            .ok()
            .and_then(|text| client_congestion(&text))
            .map(str::to_owned);
        Self {
            cpus,
            model,
            kernel,
            congestion,
            client_congestion,
        }
    }
}

/// The TCP congestion control of the load generator's sockets. The common default, rather than
/// whatever the machine has: `bbr`, the default of some machines (this project's among them),
/// paces every connection at the rate it estimates. On loopback that made the bulk client the
/// limit: the three servers left a quarter of the two cores idle and spent CPU on pacing timers,
/// and each was 14-39% faster in bulk, on 14-26% less CPU per GiB, with its client on `cubic`
/// (measured 2026-11-26). The servers' sockets keep the default, the same for all three.
const CLIENT_CONGESTION: &str = "cubic";

/// [`CLIENT_CONGESTION`] if `available`, the text of
/// `/proc/sys/net/ipv4/tcp_available_congestion_control`, lists it.
fn client_congestion(available: &str) -> Option<&'static str> {
    available
        .split_whitespace()
        .any(|name| name == CLIENT_CONGESTION)
        .then_some(CLIENT_CONGESTION)
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == "model name" && !value.is_empty()).then(|| value.to_owned())
    })
}

/// The header line of the results: machine, date, and how the figures were taken.
fn header_line(machine: &Machine, date: &str, options: &Options) -> String {
    let rounds = match options.rounds {
        1 => "1 round".to_owned(),
        n => format!("{n} rounds, interleaved, medians"),
    };
    let quick = if options.quick {
        format!(
            "; --quick: {QUICK_SECS} s runs, bulk {QUICK_BULK_MIB} MiB per connection \
             (a check, not a measurement)"
        )
    } else {
        String::new()
    };
    let client = machine
        .client_congestion
        .as_deref()
        .unwrap_or("the default");
    format!(
        "Machine: {} CPUs (nproc), {}, Linux {}, TCP congestion control {} (client: {client}); \
         {date}; {rounds}{quick}.",
        machine.cpus, machine.model, machine.kernel, machine.congestion
    )
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc_date(secs: u64) -> String {
    let days = secs / 86_400;
    let minutes = secs % 86_400 / 60;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days from the epoch on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that leap days end a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// Results: parsing, medians, and the table.

/// A `result key=value ...` line of `loadgen`'s stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResultLine {
    pairs: Vec<(String, String)>,
}

impl ResultLine {
    /// Parses a line that starts with the word `result`.
    ///
    /// # Errors
    ///
    /// If it does not, or a word after it is not `key=value` with a non-empty key and value,
    /// or a key comes twice.
    fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("result") {
            return Err(format!("`{line}` does not start with `result`"));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("`{word}` in the result line is not key=value"));
            };
            if key.is_empty() || value.is_empty() {
                return Err(format!(
                    "`{word}` in the result line has an empty key or value"
                ));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(format!("`{key}` comes twice in the result line"));
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a finite number.
    ///
    /// # Errors
    ///
    /// If the key is missing or its value is not a finite number.
    fn number(&self, key: &str) -> Result<f64, String> {
        let value = self
            .get(key)
            .ok_or_else(|| format!("the result line has no `{key}`"))?;
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{key}={value}` in the result line is not a number"))
    }

    /// The pairs as they were, `key=value` separated by spaces.
    fn pairs_text(&self) -> String {
        let words: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.join(" ")
    }
}

/// The one `result` line of a `loadgen` stdout.
///
/// # Errors
///
/// If there is none, more than one, or it does not parse.
fn find_result_line(stdout: &str) -> Result<ResultLine, String> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|line| line.split_ascii_whitespace().next() == Some("result"))
        .collect();
    match lines.as_slice() {
        [line] => ResultLine::parse(line),
        [] => Err("no `result key=value ...` line on stdout".to_owned()),
        more => Err(format!(
            "{} `result` lines on stdout, expected exactly one",
            more.len()
        )),
    }
}

/// One run's figures, or the medians of several; `None` where a workload has no such figure
/// (idle has no throughput or latency).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Metrics {
    msgs_per_sec: Option<f64>,
    mb_per_sec: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    /// Server user CPU time, in the workload's [`CpuUnit`].
    cpu_user: Option<f64>,
    /// Server user + system CPU time, in the workload's [`CpuUnit`].
    cpu_total: Option<f64>,
    peak_rss_kib: Option<f64>,
}

impl Metrics {
    /// The figures of a `loadgen` result line, the CPU time taken per `unit` from
    /// `server_user_s`, `server_sys_s` and `messages` or `bytes`.
    ///
    /// # Errors
    ///
    /// If a figure is missing or not a number, or the line counts errors.
    fn from_result(line: &ResultLine, unit: CpuUnit) -> Result<Self, String> {
        for key in ["mismatches", "resets", "short"] {
            let count = line.number(key)?;
            if count != 0.0 {
                return Err(format!("the result line counts {key}={count}"));
            }
        }
        let user_s = line.number("server_user_s")?;
        let sys_s = line.number("server_sys_s")?;
        let per = |seconds: f64| -> Result<Option<f64>, String> {
            Ok(match unit {
                CpuUnit::PerMsg | CpuUnit::PerConn => {
                    let messages = line.number("messages")?;
                    (messages > 0.0).then(|| seconds * 1e6 / messages)
                }
                CpuUnit::PerGib => {
                    let gib = line.number("bytes")? / GIB;
                    (gib > 0.0).then(|| seconds / gib)
                }
                CpuUnit::PercentCore => {
                    let secs = line.number("secs")?;
                    (secs > 0.0).then(|| 100.0 * seconds / secs)
                }
            })
        };
        Ok(Self {
            msgs_per_sec: Some(line.number("msgs_per_sec")?),
            mb_per_sec: Some(line.number("mb_per_sec")?),
            p50_us: Some(line.number("p50_us")?),
            p99_us: Some(line.number("p99_us")?),
            p999_us: Some(line.number("p999_us")?),
            cpu_user: per(user_s)?,
            cpu_total: per(user_s + sys_s)?,
            peak_rss_kib: Some(line.number("server_peak_rss_kib")?),
        })
    }

    /// The figures of an idle run's pairs: CPU as a percentage of one core over `secs`, and
    /// the peak RSS.
    ///
    /// # Errors
    ///
    /// If a figure is missing or not a number, or `secs` is not positive.
    fn from_idle(line: &ResultLine) -> Result<Self, String> {
        let secs = line.number("secs")?;
        if secs <= 0.0 {
            return Err(format!("an idle run of {secs} s"));
        }
        let user_s = line.number("server_user_s")?;
        let sys_s = line.number("server_sys_s")?;
        Ok(Self {
            cpu_user: Some(100.0 * user_s / secs),
            cpu_total: Some(100.0 * (user_s + sys_s) / secs),
            peak_rss_kib: Some(line.number("server_peak_rss_kib")?),
            ..Self::default()
        })
    }

    /// The median of each figure over `runs`, each over the runs that have it.
    fn median_of(runs: &[Self]) -> Self {
        let of = |field: fn(&Self) -> Option<f64>| median(runs.iter().filter_map(field).collect());
        Self {
            msgs_per_sec: of(|m| m.msgs_per_sec),
            mb_per_sec: of(|m| m.mb_per_sec),
            p50_us: of(|m| m.p50_us),
            p99_us: of(|m| m.p99_us),
            p999_us: of(|m| m.p999_us),
            cpu_user: of(|m| m.cpu_user),
            cpu_total: of(|m| m.cpu_total),
            peak_rss_kib: of(|m| m.peak_rss_kib),
        }
    }
}

/// The median of `values`: the middle one, or the mean of the two middle ones; `None` if there
/// are none.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The medians of one workload and server.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    workload: &'static str,
    server: ServerKind,
    /// How many runs there were, and how many of them gave figures.
    runs: usize,
    ok: usize,
    median: Metrics,
    /// The lowest and highest msgs/s of the runs: how far apart the same server's runs were.
    msgs_range: Option<(f64, f64)>,
}

/// A row per workload and server of `selected`, in order, from the runs' `records`.
fn summarize(selected: &[Workload], records: &[Record]) -> Vec<Row> {
    let mut rows = Vec::new();
    for workload in selected {
        for server in ServerKind::ALL {
            let runs: Vec<&Record> = records
                .iter()
                .filter(|r| r.workload == workload.name && r.server == server)
                .collect();
            let figures: Vec<Metrics> = runs.iter().filter_map(|r| r.metrics).collect();
            let rates = figures.iter().filter_map(|m| m.msgs_per_sec);
            let msgs_range = rates.fold(None, |range: Option<(f64, f64)>, rate| {
                Some(range.map_or((rate, rate), |(lo, hi)| (lo.min(rate), hi.max(rate))))
            });
            rows.push(Row {
                workload: workload.name,
                server,
                runs: runs.len(),
                ok: figures.len(),
                median: Metrics::median_of(&figures),
                msgs_range,
            });
        }
    }
    rows
}

/// The row of `workload` and `server`, if it has figures.
fn find_row<'a>(rows: &'a [Row], workload: &str, server: ServerKind) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.workload == workload && r.server == server && r.ok > 0)
}

/// `value / base` as `0.52x`, or [`NONE`] if either is missing or the base is 0.
fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(value), Some(base)) if base > 0.0 => format!("{:.2}x", value / base),
        _ => NONE.to_owned(),
    }
}

/// A count per second: whole and grouped by thousands from 100 on, one decimal below.
fn format_rate(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        whole_grouped(value)
    }
}

/// MB/s: one decimal from 100 on, two below.
fn format_mb(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// A latency in µs: whole and grouped by thousands from 100 on, one decimal below.
fn format_us(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        whole_grouped(value)
    }
}

/// `value` rounded to a whole number, its digits grouped by thousands with commas.
fn whole_grouped(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && c.is_ascii_digit() && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A CPU figure with its unit.
fn format_cpu(value: f64, unit: CpuUnit) -> String {
    match unit {
        CpuUnit::PerMsg => format!("{value:.2} µs/msg"),
        CpuUnit::PerConn => format!("{value:.1} µs/conn"),
        CpuUnit::PerGib => format!("{value:.2} s/GiB"),
        CpuUnit::PercentCore => format!("{value:.2}% core"),
    }
}

/// A peak RSS in KiB, shown in MiB.
fn format_rss(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// `value` formatted, or [`NONE`].
fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| NONE.to_owned(), format)
}

/// The short summary of one run's figures for the progress line.
fn progress_summary(metrics: &Metrics, unit: CpuUnit) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = metrics.msgs_per_sec {
        parts.push(format!("{} msgs/s", format_rate(rate)));
    }
    if let Some(p99) = metrics.p99_us {
        parts.push(format!("p99 {} µs", format_us(p99)));
    }
    if let Some(cpu) = metrics.cpu_total {
        parts.push(format!("CPU {}", format_cpu(cpu, unit)));
    }
    parts.join(", ")
}

/// The markdown table of the rows of `selected`'s table workloads.
fn markdown_table(selected: &[Workload], rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | server | msgs/s | msgs/s, lowest-highest | MB/s | p50 µs | p99 µs | p99.9 µs \
         | CPU user | CPU total | peak RSS | msgs/s vs tokio | user vs tokio | CPU vs tokio |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for workload in selected.iter().filter(|w| w.in_table) {
        let tokio = find_row(rows, workload.name, ServerKind::Tokio).map(|r| r.median);
        for row in rows.iter().filter(|r| r.workload == workload.name) {
            let server = if row.ok == row.runs {
                row.server.name().to_owned()
            } else {
                format!("{} ({}/{} ok)", row.server.name(), row.ok, row.runs)
            };
            if row.ok == 0 {
                let _ = writeln!(
                    out,
                    "| {} | {server} | failed |{}",
                    workload.name,
                    format!(" {NONE} |").repeat(11)
                );
                continue;
            }
            let m = &row.median;
            let unit = workload.unit;
            let cpu = |value| format_cpu(value, unit);
            let _ = writeln!(
                out,
                "| {} | {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                workload.name,
                cell(m.msgs_per_sec, format_rate),
                row.msgs_range.map_or_else(
                    || NONE.to_owned(),
                    |(lo, hi)| format!("{}–{}", format_rate(lo), format_rate(hi))
                ),
                cell(m.mb_per_sec, format_mb),
                cell(m.p50_us, format_us),
                cell(m.p99_us, format_us),
                cell(m.p999_us, format_us),
                cell(m.cpu_user, cpu),
                cell(m.cpu_total, cpu),
                cell(m.peak_rss_kib, format_rss),
                ratio(m.msgs_per_sec, tokio.and_then(|t| t.msgs_per_sec)),
                ratio(m.cpu_user, tokio.and_then(|t| t.cpu_user)),
                ratio(m.cpu_total, tokio.and_then(|t| t.cpu_total)),
            );
        }
    }
    out
}

/// The markdown table that re-bases the figures: ours against the single-threaded epoll loop,
/// the epoll loop against tokio, and each server's system CPU time (total less user) as a
/// multiple of tokio's total. The last three say how much of a CPU target stated as a multiple
/// of tokio's CPU is taken by the kernel alone: a target below the least of them asks for less
/// kernel time than any server measured spends.
fn floor_table(selected: &[Workload], rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | ours vs epoll: msgs/s | ours vs epoll: CPU | epoll vs tokio: CPU \
         | system CPU vs tokio's CPU: ours | tokio | epoll |\n\
         |---|--:|--:|--:|--:|--:|--:|\n",
    );
    let median =
        |workload: &Workload, server| find_row(rows, workload.name, server).map(|row| &row.median);
    for workload in selected
        .iter()
        .filter(|w| w.in_table && w.unit != CpuUnit::PercentCore)
    {
        let ours = median(workload, ServerKind::Ours);
        let tokio = median(workload, ServerKind::Tokio);
        let epoll = median(workload, ServerKind::Epoll);
        let tokio_total = tokio.and_then(|m| m.cpu_total);
        let _ = write!(
            out,
            "| {} | {} | {} | {} |",
            workload.name,
            ratio(
                ours.and_then(|m| m.msgs_per_sec),
                epoll.and_then(|m| m.msgs_per_sec)
            ),
            ratio(
                ours.and_then(|m| m.cpu_total),
                epoll.and_then(|m| m.cpu_total)
            ),
            ratio(epoll.and_then(|m| m.cpu_total), tokio_total),
        );
        for server in [ours, tokio, epoll] {
            let _ = write!(
                out,
                " {} |",
                ratio(server.and_then(system_cpu), tokio_total)
            );
        }
        out.push('\n');
    }
    out
}

/// System CPU time: total less user, from the medians (never below 0).
fn system_cpu(metrics: &Metrics) -> Option<f64> {
    Some((metrics.cpu_total? - metrics.cpu_user?).max(0.0))
}

/// The sweep as a markdown table: a row per connection count, msgs/s and p99 per server.
fn sweep_table(selected: &[Workload], rows: &[Row]) -> String {
    let mut out = String::from("| connections |");
    for server in ServerKind::ALL {
        let _ = write!(out, " {} msgs/s |", server.name());
    }
    for server in ServerKind::ALL {
        let _ = write!(out, " {} p99 µs |", server.name());
    }
    out.push_str("\n|--:|");
    out.push_str(&"--:|".repeat(2 * ServerKind::ALL.len()));
    out.push('\n');
    for (connections, workload) in sweep_points(selected) {
        let _ = write!(out, "| {connections} |");
        for server in ServerKind::ALL {
            let rate = find_row(rows, workload.name, server).and_then(|r| r.median.msgs_per_sec);
            let _ = write!(out, " {} |", cell(rate, format_rate));
        }
        for server in ServerKind::ALL {
            let p99 = find_row(rows, workload.name, server).and_then(|r| r.median.p99_us);
            let _ = write!(out, " {} |", cell(p99, format_us));
        }
        out.push('\n');
    }
    out
}

/// The sweep's workloads among `selected`, by connection count.
fn sweep_points(selected: &[Workload]) -> Vec<(u32, &Workload)> {
    let mut points: Vec<(u32, &Workload)> = selected
        .iter()
        .filter_map(|w| w.sweep.map(|c| (c, w)))
        .collect();
    points.sort_by_key(|&(c, _)| c);
    points
}

/// `sweep.txt`, the input of `chart`: a line per server and connection count with figures,
/// `server=NAME connections=N msgs_per_sec=X p99_us=Y`.
fn sweep_text(selected: &[Workload], rows: &[Row]) -> String {
    let mut out = String::new();
    for server in ServerKind::ALL {
        for (connections, workload) in sweep_points(selected) {
            let Some(row) = find_row(rows, workload.name, server) else {
                continue;
            };
            if let (Some(rate), Some(p99)) = (row.median.msgs_per_sec, row.median.p99_us) {
                let _ = writeln!(
                    out,
                    "server={} connections={connections} msgs_per_sec={rate:.1} p99_us={p99:.1}",
                    server.name()
                );
            }
        }
    }
    out
}

/// `results.md`: the header, the table, what its columns mean, and the sweep.
fn results_markdown(header: &str, selected: &[Workload], rows: &[Row], rounds: usize) -> String {
    let mut out = format!("{header}\n\n");
    if selected.iter().any(|w| w.in_table) {
        out.push_str(&markdown_table(selected, rows));
        let _ = writeln!(
            out,
            "\nmsgs/s: replies per second (bulk: 100-byte lines; storm: connections, each a \
             connect, a line, its reply and a close). p50/p99/p99.9: round-trip latency in µs \
             (storm: connect to reply). CPU: the server's user and user+system CPU time per \
             message (bulk: per GiB of replies; storm: per connection; idle: % of one core \
             while nothing happens). Peak RSS: the server's VmHWM. \"vs tokio\": the ratio to \
             tokio's figure (msgs/s: higher is better; CPU: lower is better). Each figure is \
             the median of {rounds} run(s); \"lowest-highest\" is the spread of those runs' \
             msgs/s, which on a noisy machine says how far a difference can be trusted."
        );
        out.push_str(
            "\nThe same runs against the single-threaded epoll loop, and the kernel's part.\n\n",
        );
        out.push_str(&floor_table(selected, rows));
        let _ = writeln!(
            out,
            "\n\"ours vs epoll\": the ratio of our median to the epoll loop's (one thread, a \
             `recv` and a `send` per read, no hand-off). \"epoll vs tokio\": that loop's CPU \
             against tokio's. \"system CPU vs tokio's CPU\": each server's system time (total \
             less user, from the medians) as a multiple of tokio's total CPU, so a CPU target \
             stated as a multiple of tokio's is below what a server spends in the kernel alone \
             where it is below that server's figure. The user/system split is sampled by the \
             kernel at 100 Hz: an estimate."
        );
    }
    if !sweep_points(selected).is_empty() {
        out.push_str("\nSweep: 64 B ping-pong, depth 1, by connection count.\n\n");
        out.push_str(&sweep_table(selected, rows));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A child's output as text, for messages and for parsing.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command line for messages: the program's file name and its arguments.
fn show_command(program: &Path, args: &[String]) -> String {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut words = vec![name];
    words.extend(args.iter().map(|arg| {
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            format!("'{arg}'")
        } else {
            arg.clone()
        }
    }));
    words.join(" ")
}

/// The last [`SHOWN_LINES`] lines of a process's stderr as a suffix for a message, or a note
/// that it wrote nothing.
fn stderr_tail(who: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.iter().all(|line| line.trim().is_empty()) {
        return format!("\n({who} wrote nothing to stderr)");
    }
    let skipped = lines.len().saturating_sub(SHOWN_LINES);
    let mut out = format!("\n{who}'s stderr:");
    if skipped > 0 {
        let _ = write!(out, "\n  ... ({skipped} earlier lines not shown)");
    }
    for line in &lines[skipped..] {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// A finished process: its status and output.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `program ARGS` with its stdout and stderr captured, killing it if it is not done by
/// `timeout`.
///
/// # Errors
///
/// If it cannot be started or waited for, or runs out of time (with its stderr so far), each
/// naming the command.
fn run_with_deadline(program: &Path, args: &[String], timeout: Duration) -> Result<Output, String> {
    let shown = show_command(program, args);
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("could not start `{shown}`: {err}"))?;
    let mut child = KillOnDrop(child);
    let (stdout, stderr) = capture_output(&mut child.0)?;
    let status = match wait_until(&mut child.0, Instant::now() + timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            child.stop();
            let stderr = text(&collect(&stderr, Instant::now() + DRAIN_TIMEOUT));
            return Err(format!(
                "`{shown}` did not finish within {} s (killed it){}",
                timeout.as_secs(),
                stderr_tail(&name_of(program), &stderr)
            ));
        }
        Err(err) => return Err(format!("could not wait for `{shown}`: {err}")),
    };
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    Ok(Output {
        status,
        stdout: text(&collect(&stdout, deadline)),
        stderr: text(&collect(&stderr, deadline)),
    })
}

/// A program's file name, for messages.
fn name_of(program: &Path) -> String {
    program.file_name().map_or_else(
        || "the process".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A running server: killed and reaped when dropped.
struct ServerProcess {
    child: KillOnDrop,
    log: ServerLog,
    addr: SocketAddr,
    pid: u32,
    /// What was started, for messages.
    shown: String,
    /// The binary's name, for messages.
    name: &'static str,
}

impl ServerProcess {
    /// Starts `binary` with `kind`'s arguments and waits for its `listening on 127.0.0.1:PORT`.
    ///
    /// # Errors
    ///
    /// If it cannot be started, exits, or does not print the line within [`LISTEN_TIMEOUT`];
    /// the message names the command and ends with the server's stderr.
    fn start(binary: &Path, kind: ServerKind) -> Result<Self, String> {
        let args: Vec<String> = kind.args().iter().map(|&a| a.to_owned()).collect();
        let shown = show_command(binary, &args);
        let mut child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            // Quiet servers print nothing there; whatever they print must not block them.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("could not start `{shown}`: {err}"))?;
        let stderr = child.stderr.take();
        // The guard first, so that every error path below kills the server.
        let child = KillOnDrop(child);
        let stderr = stderr.ok_or("bench: the server's stderr is not piped")?;
        let pid = child.0.id();
        let log = ServerLog::start(stderr, KEPT_LINES)?;
        let mut server = Self {
            child,
            log,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            pid,
            shown,
            name: kind.binary(),
        };
        let found = server
            .log
            .wait_for(Instant::now() + LISTEN_TIMEOUT, |line| {
                parse_listening(line).filter(|addr| addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
            });
        match found {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(Stop::TimedOut) => Err(server.failure(&format!(
                "did not print `listening on 127.0.0.1:PORT` within {} s",
                LISTEN_TIMEOUT.as_secs()
            ))),
            Err(Stop::Closed) => {
                let how = match wait_until(&mut server.child.0, Instant::now() + DRAIN_TIMEOUT) {
                    Ok(Some(status)) => format!("exited with {status}"),
                    _ => "closed its stderr".to_owned(),
                };
                Err(server.failure(&format!(
                    "{how} before printing `listening on 127.0.0.1:PORT`"
                )))
            }
        }
    }

    /// Kills the server and returns `` `COMMAND` WHAT `` with its stderr.
    fn failure(&mut self, what: &str) -> String {
        self.child.stop();
        let note = self.stderr_note();
        format!("`{}` {what}{note}", self.shown)
    }

    /// Stops the server with SIGTERM (`kill -TERM PID`) and waits for it to exit; kills it if it
    /// does not within [`STOP_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// If SIGTERM cannot be sent, the server does not exit in time, or exits with a failure.
    fn stop(&mut self) -> Result<(), String> {
        let kill = Path::new("kill");
        let args = ["-TERM".to_owned(), self.pid.to_string()];
        let sent = run_with_deadline(kill, &args, HELPER_TIMEOUT).and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{}` exited with {}: {}",
                    show_command(kill, &args),
                    out.status,
                    out.stderr.trim()
                ))
            }
        });
        let result = match sent {
            Err(err) => Err(format!("could not stop `{}`: {err}", self.shown)),
            Ok(()) => match wait_until(&mut self.child.0, Instant::now() + STOP_TIMEOUT) {
                Ok(Some(status)) if status.success() => Ok(()),
                Ok(Some(status)) => Err(format!(
                    "`{}` exited with {status} on SIGTERM, expected exit status 0",
                    self.shown
                )),
                Ok(None) => Err(format!(
                    "`{}` was still running {} s after SIGTERM (killed it)",
                    self.shown,
                    STOP_TIMEOUT.as_secs()
                )),
                Err(err) => Err(format!("could not wait for `{}`: {err}", self.shown)),
            },
        };
        // Whatever happened, the server is gone after this (a no-op if it exited).
        self.child.stop();
        result
    }

    /// The server's last stderr lines as a suffix for a message. Once the server is gone its
    /// stderr ends, so this waits (briefly) for the last lines.
    fn stderr_note(&mut self) -> String {
        if self.child.0.try_wait().is_ok_and(|status| status.is_some()) {
            self.log.wait_closed(Instant::now() + DRAIN_TIMEOUT);
        } else {
            self.log.wait_closed(Instant::now());
        }
        stderr_tail(self.name, &self.log.lines.join("\n"))
    }
}

/// `servers` turned left by `by` places: round 1 runs ours, tokio, epoll; round 2 tokio, epoll,
/// ours; and so on.
fn rotated<const N: usize>(servers: [ServerKind; N], by: usize) -> [ServerKind; N] {
    let mut servers = servers;
    servers.rotate_left(by % N.max(1));
    servers
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_server_order_turns_each_round() {
        let order = |by| rotated(ServerKind::ALL, by);
        assert_eq!(order(0), ServerKind::ALL);
        assert_ne!(order(1)[0], order(0)[0]);
        assert_ne!(order(2)[0], order(1)[0]);
        assert_eq!(order(ServerKind::ALL.len()), ServerKind::ALL);
    }

    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|&w| w.to_owned()).collect()
    }

    fn options(quick: bool, rounds: usize) -> Options {
        Options {
            quick,
            rounds,
            out: None,
            only: None,
            render: false,
        }
    }

    #[test]
    fn default_arguments() {
        assert_eq!(parse_args(&[]), Ok(Parsed::Run(options(false, 3))));
        assert_eq!(
            parse_args(&args(&["--quick"])),
            Ok(Parsed::Run(options(true, 1)))
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(Parsed::Help));
        assert_eq!(
            parse_args(&args(&["--rounds", "5", "-h"])),
            Ok(Parsed::Help)
        );
    }

    #[test]
    fn every_option_in_both_forms() {
        let expected = Parsed::Run(Options {
            quick: true,
            rounds: 5,
            out: Some(PathBuf::from("/tmp/b")),
            only: Some("64x64".to_owned()),
            render: false,
        });
        assert_eq!(
            parse_args(&args(&[
                "--quick", "--rounds", "5", "--out", "/tmp/b", "--only", "64x64"
            ])),
            Ok(expected.clone())
        );
        assert_eq!(
            parse_args(&args(&[
                "--only=64x64",
                "--out=/tmp/b",
                "--rounds=5",
                "--quick"
            ])),
            Ok(expected)
        );
        let Ok(Parsed::Run(sweep)) = parse_args(&args(&["--only", "sweep"])) else {
            panic!("--only sweep is refused");
        };
        assert_eq!(sweep.only.as_deref(), Some("sweep"));
        let rendering = Options {
            out: Some(PathBuf::from("/tmp/b")),
            render: true,
            ..options(false, 3)
        };
        assert_eq!(
            parse_args(&args(&["--render", "--out=/tmp/b"])),
            Ok(Parsed::Run(rendering))
        );
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        for (words, expected) in [
            (&["--rounds"][..], "--rounds needs a value"),
            (&["--rounds", "0"], "got `0`"),
            (&["--rounds", "-1"], "got `-1`"),
            (&["--rounds", "three"], "got `three`"),
            (&["--rounds="], "non-empty"),
            (&["--rounds", "2", "--rounds", "3"], "--rounds given twice"),
            (&["--quick", "--quick"], "--quick given twice"),
            (&["--quick=yes"], "--quick takes no value"),
            (&["--out"], "--out needs a value"),
            (&["--only", "nope"], "no workload `nope`"),
            (&["--fast"], "unknown argument `--fast`"),
            (&["quick"], "unknown argument `quick`"),
            (&["--help=1"], "unknown argument `--help=1`"),
            (&["--render=yes"], "--render takes no value"),
            (&["--render", "--render"], "--render given twice"),
            (&["--render", "--rounds", "2"], "--render takes only --out"),
            (&["--only", "idle", "--render"], "--render takes only --out"),
            (&["--quick", "--render"], "--render takes only --out"),
        ] {
            let err = parse_args(&args(words)).expect_err(&format!("{words:?} accepted"));
            assert!(err.contains(expected), "{words:?}: {err}");
            assert!(!err.contains('\n'), "{words:?}: {err}");
        }
        // The message for an unknown workload lists the ones there are.
        let err = parse_args(&args(&["--only", "x"])).unwrap_err();
        assert!(err.contains("1x64") && err.contains("idle") && err.contains("sweep"));
    }

    fn load_args(workload: &Workload) -> Vec<&str> {
        match &workload.kind {
            Kind::Load { args, .. } => args.iter().map(String::as_str).collect(),
            Kind::Idle { .. } => panic!("{} is not a load", workload.name),
        }
    }

    #[test]
    fn the_workloads_of_the_spec() {
        let all = workloads(false);
        let names: Vec<&str> = all.iter().map(|w| w.name).collect();
        assert_eq!(
            names,
            [
                "1x64",
                "64x64",
                "64x512d4",
                "1000x64",
                "bulk8x64MiB",
                "storm",
                "idle",
                "8x64",
                "512x64"
            ]
        );
        let find = |name| all.iter().find(|w| w.name == name).unwrap();
        assert_eq!(
            load_args(find("1x64")),
            [
                "pingpong",
                "--connections",
                "1",
                "--size",
                "64",
                "--duration",
                "5"
            ]
        );
        assert_eq!(
            load_args(find("64x512d4")),
            [
                "pingpong",
                "--connections",
                "64",
                "--size",
                "512",
                "--depth",
                "4",
                "--duration",
                "5"
            ]
        );
        assert_eq!(
            load_args(find("1000x64")),
            [
                "pingpong",
                "--connections",
                "1000",
                "--size",
                "64",
                "--duration",
                "5"
            ]
        );
        assert_eq!(
            load_args(find("bulk8x64MiB")),
            ["bulk", "--connections", "8", "--mib", "64", "--line", "100"]
        );
        assert_eq!(
            load_args(find("storm")),
            ["storm", "--concurrency", "8", "--duration", "5"]
        );
        assert_eq!(find("idle").kind, Kind::Idle { secs: 5 });
        assert_eq!(find("bulk8x64MiB").unit, CpuUnit::PerGib);
        assert_eq!(find("storm").unit, CpuUnit::PerConn);
        assert_eq!(find("idle").unit, CpuUnit::PercentCore);

        // The table has the spec's seven; the sweep has its four points, two shared.
        let table: Vec<&str> = all.iter().filter(|w| w.in_table).map(|w| w.name).collect();
        assert_eq!(
            table,
            [
                "1x64",
                "64x64",
                "64x512d4",
                "1000x64",
                "bulk8x64MiB",
                "storm",
                "idle"
            ]
        );
        let sweep: Vec<(u32, &str)> = sweep_points(&all)
            .into_iter()
            .map(|(c, w)| (c, w.name))
            .collect();
        assert_eq!(
            sweep,
            [(1, "1x64"), (8, "8x64"), (64, "64x64"), (512, "512x64")]
        );
        assert!(has_full_sweep(&all));
    }

    #[test]
    fn quick_workloads_are_short() {
        let quick = workloads(true);
        let full = workloads(false);
        assert_eq!(
            quick.iter().map(|w| w.name).collect::<Vec<_>>(),
            full.iter().map(|w| w.name).collect::<Vec<_>>()
        );
        let find = |name| quick.iter().find(|w| w.name == name).unwrap();
        assert_eq!(
            load_args(find("64x64")),
            [
                "pingpong",
                "--connections",
                "64",
                "--size",
                "64",
                "--duration",
                "2"
            ]
        );
        assert_eq!(
            load_args(find("bulk8x64MiB")),
            ["bulk", "--connections", "8", "--mib", "8", "--line", "100"]
        );
        assert_eq!(
            load_args(find("storm")),
            ["storm", "--concurrency", "8", "--duration", "2"]
        );
        assert_eq!(find("idle").kind, Kind::Idle { secs: 2 });
        // Every deadline leaves room for the run and is still bounded.
        for workload in quick.iter().chain(&full) {
            let deadline = workload.deadline();
            assert!(deadline >= LOADGEN_SLACK, "{}", workload.name);
            assert!(deadline <= Duration::from_secs(120), "{}", workload.name);
        }
    }

    #[test]
    fn only_selects() {
        let names = |only| -> Vec<&str> {
            select(workloads(false), only)
                .iter()
                .map(|w| w.name)
                .collect()
        };
        assert_eq!(names(Some("storm")), ["storm"]);
        assert_eq!(names(Some("sweep")), ["1x64", "64x64", "8x64", "512x64"]);
        assert_eq!(names(None).len(), 9);
        assert!(has_full_sweep(&select(workloads(true), Some("sweep"))));
        assert!(!has_full_sweep(&select(workloads(true), Some("64x64"))));
    }

    #[test]
    fn the_servers() {
        let names: Vec<&str> = ServerKind::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["ours", "tokio", "epoll"]);
        assert_eq!(ServerKind::Ours.args(), ["-q", "--exit", "off", "0"]);
        assert_eq!(ServerKind::Tokio.binary(), "tokio-server");
        assert_eq!(ServerKind::Epoll.args(), ["-q", "0"]);
    }

    /// The example line of the spec.
    const SPEC_LINE: &str = "result mode=pingpong connections=64 size=64 depth=1 secs=5.000 \
        messages=700000 bytes=44800000 msgs_per_sec=140000.0 mb_per_sec=8.96 p50_us=400.0 \
        p99_us=900.0 p999_us=1500.0 max_us=3000.0 mismatches=0 resets=0 short=0 \
        server_user_s=1.200 server_sys_s=3.000 server_user_us_per_msg=1.71 \
        server_cpu_us_per_msg=6.00 server_cpu_s_per_gib=0.78 server_peak_rss_kib=12000";

    #[test]
    fn result_lines_parse() {
        let line = ResultLine::parse(SPEC_LINE).unwrap();
        assert_eq!(line.get("mode"), Some("pingpong"));
        assert_eq!(line.number("msgs_per_sec"), Ok(140_000.0));
        assert_eq!(line.number("server_peak_rss_kib"), Ok(12_000.0));
        assert!(line.number("nope").unwrap_err().contains("no `nope`"));
        assert!(line.number("mode").unwrap_err().contains("not a number"));
        assert_eq!(
            line.pairs_text(),
            SPEC_LINE
                .strip_prefix("result ")
                .unwrap()
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
        // Extra whitespace is fine.
        let spaced = ResultLine::parse("result  a=1\tb=2 ").unwrap();
        assert_eq!(spaced.pairs_text(), "a=1 b=2");
        assert_eq!(ResultLine::parse("result").unwrap().pairs, []);
    }

    #[test]
    fn bad_result_lines() {
        for (line, expected) in [
            ("results a=1", "does not start"),
            ("a=1", "does not start"),
            ("", "does not start"),
            ("result a", "not key=value"),
            ("result =1", "empty key"),
            ("result a=", "empty key or value"),
            ("result a=1 a=2", "`a` comes twice"),
        ] {
            let err = ResultLine::parse(line).expect_err(line);
            assert!(err.contains(expected), "{line:?}: {err}");
        }
        let line = ResultLine::parse("result a=inf b=NaN c=1e3").unwrap();
        assert!(line.number("a").is_err());
        assert!(line.number("b").is_err());
        assert_eq!(line.number("c"), Ok(1000.0));
    }

    #[test]
    fn the_result_line_among_other_output() {
        let stdout = format!("some note\n{SPEC_LINE}\n\n");
        assert_eq!(
            find_result_line(&stdout).unwrap().get("mode"),
            Some("pingpong")
        );
        assert!(find_result_line("").unwrap_err().contains("no `result"));
        assert!(find_result_line("resulting a=1\n").is_err());
        let twice = format!("{SPEC_LINE}\n{SPEC_LINE}\n");
        assert!(
            find_result_line(&twice)
                .unwrap_err()
                .contains("2 `result` lines")
        );
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn metrics_from_a_result_line() {
        let line = ResultLine::parse(SPEC_LINE).unwrap();
        let m = Metrics::from_result(&line, CpuUnit::PerMsg).unwrap();
        assert_eq!(m.msgs_per_sec, Some(140_000.0));
        assert_eq!(m.mb_per_sec, Some(8.96));
        assert_eq!(m.p50_us, Some(400.0));
        assert_eq!(m.p99_us, Some(900.0));
        assert_eq!(m.p999_us, Some(1500.0));
        assert_eq!(m.peak_rss_kib, Some(12_000.0));
        // 1.2 s over 700,000 messages; 4.2 s in all.
        assert!(close(m.cpu_user, 1.2e6 / 700_000.0));
        assert!(close(m.cpu_total, 4.2e6 / 700_000.0));

        let m = Metrics::from_result(&line, CpuUnit::PerGib).unwrap();
        assert!(close(m.cpu_total, 4.2 / (44_800_000.0 / GIB)));
        let m = Metrics::from_result(&line, CpuUnit::PercentCore).unwrap();
        assert!(close(m.cpu_total, 84.0));

        // No messages: no CPU per message, rather than infinity.
        let none = ResultLine::parse(&SPEC_LINE.replace("messages=700000", "messages=0")).unwrap();
        assert_eq!(
            Metrics::from_result(&none, CpuUnit::PerMsg)
                .unwrap()
                .cpu_user,
            None
        );
    }

    #[test]
    fn result_lines_with_errors_or_gaps_are_refused() {
        let bad = SPEC_LINE.replace("mismatches=0", "mismatches=3");
        let err = Metrics::from_result(&ResultLine::parse(&bad).unwrap(), CpuUnit::PerMsg);
        assert!(err.unwrap_err().contains("mismatches=3"));
        let gap = SPEC_LINE.replace("server_sys_s=3.000 ", "");
        let err = Metrics::from_result(&ResultLine::parse(&gap).unwrap(), CpuUnit::PerMsg);
        assert!(err.unwrap_err().contains("no `server_sys_s`"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![7.0]), Some(7.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![5.0, 5.0, 1.0, 9.0, 100.0]), Some(5.0));
    }

    fn metrics(rate: f64, p99: f64, user: f64, total: f64) -> Metrics {
        Metrics {
            msgs_per_sec: Some(rate),
            mb_per_sec: Some(rate * 64.0 / 1e6),
            p50_us: Some(p99 / 2.0),
            p99_us: Some(p99),
            p999_us: Some(p99 * 2.0),
            cpu_user: Some(user),
            cpu_total: Some(total),
            peak_rss_kib: Some(2048.0),
        }
    }

    #[test]
    fn medians_are_taken_per_figure() {
        let runs = [
            metrics(100.0, 30.0, 1.0, 9.0),
            metrics(300.0, 10.0, 3.0, 7.0),
            metrics(200.0, 20.0, 2.0, 8.0),
        ];
        let m = Metrics::median_of(&runs);
        assert_eq!(m.msgs_per_sec, Some(200.0));
        assert_eq!(m.p99_us, Some(20.0));
        assert_eq!(m.cpu_user, Some(2.0));
        assert_eq!(m.cpu_total, Some(8.0));
        // Missing figures stay missing; the others are medians of those there.
        let idle = Metrics {
            cpu_total: Some(0.2),
            ..Metrics::default()
        };
        let m = Metrics::median_of(&[idle, Metrics::default()]);
        assert_eq!(m.msgs_per_sec, None);
        assert_eq!(m.cpu_total, Some(0.2));
    }

    #[test]
    fn summary_rows_count_failed_runs() {
        let all = workloads(true);
        let records = [
            Record {
                workload: "64x64",
                server: ServerKind::Ours,
                metrics: Some(metrics(100.0, 10.0, 1.0, 5.0)),
            },
            Record {
                workload: "64x64",
                server: ServerKind::Ours,
                metrics: None,
            },
            Record {
                workload: "64x64",
                server: ServerKind::Ours,
                metrics: Some(metrics(300.0, 30.0, 3.0, 7.0)),
            },
        ];
        let rows = summarize(&select(all, Some("64x64")), &records);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].server, rows[0].runs, rows[0].ok),
            (ServerKind::Ours, 3, 2)
        );
        assert_eq!(rows[0].median.msgs_per_sec, Some(200.0));
        assert_eq!(rows[0].msgs_range, Some((100.0, 300.0)));
        assert_eq!((rows[1].runs, rows[1].ok), (0, 0));
        assert_eq!(rows[1].msgs_range, None);
        assert!(find_row(&rows, "64x64", ServerKind::Tokio).is_none());
    }

    #[test]
    fn number_formats() {
        assert_eq!(format_rate(140_000.0), "140,000");
        assert_eq!(format_rate(16_612.4), "16,612");
        assert_eq!(format_rate(1_234_567.8), "1,234,568");
        assert_eq!(format_rate(999.6), "1,000");
        assert_eq!(format_rate(100.0), "100");
        assert_eq!(format_rate(12.34), "12.3");
        assert_eq!(format_mb(8.961), "8.96");
        assert_eq!(format_mb(1234.56), "1234.6");
        assert_eq!(format_us(61.25), "61.2");
        assert_eq!(format_us(900.4), "900");
        assert_eq!(format_us(1_091_567.8), "1,091,568");
        assert_eq!(format_cpu(6.0, CpuUnit::PerMsg), "6.00 µs/msg");
        assert_eq!(format_cpu(25.04, CpuUnit::PerConn), "25.0 µs/conn");
        assert_eq!(format_cpu(0.784, CpuUnit::PerGib), "0.78 s/GiB");
        assert_eq!(format_cpu(0.2, CpuUnit::PercentCore), "0.20% core");
        assert_eq!(format_rss(12_000.0), "11.7 MiB");
        assert_eq!(ratio(Some(3.0), Some(6.0)), "0.50x");
        assert_eq!(ratio(Some(3.0), Some(0.0)), NONE);
        assert_eq!(ratio(None, Some(1.0)), NONE);
        assert_eq!(ratio(Some(1.0), None), NONE);
    }

    /// Three rows for 64x64 (epoll's with a failed run) plus idle (epoll's failed).
    fn table_rows() -> [Row; 6] {
        let idle = |total| Metrics {
            cpu_user: Some(total / 2.0),
            cpu_total: Some(total),
            peak_rss_kib: Some(1024.0),
            ..Metrics::default()
        };
        let row = |workload, server, ok, median: Metrics| Row {
            workload,
            server,
            runs: 3,
            ok,
            msgs_range: median.msgs_per_sec.map(|rate| (rate * 0.9, rate * 1.2)),
            median,
        };
        [
            row(
                "64x64",
                ServerKind::Ours,
                3,
                metrics(280_000.0, 450.0, 1.0, 3.0),
            ),
            row(
                "64x64",
                ServerKind::Tokio,
                3,
                metrics(140_000.0, 900.0, 1.0, 6.0),
            ),
            row(
                "64x64",
                ServerKind::Epoll,
                2,
                metrics(210_000.0, 600.0, 1.8, 4.5),
            ),
            row("idle", ServerKind::Ours, 3, idle(0.1)),
            row("idle", ServerKind::Tokio, 3, idle(0.4)),
            row("idle", ServerKind::Epoll, 0, Metrics::default()),
        ]
    }

    /// The table of [`table_rows`], with tokio as the base of the ratios.
    #[test]
    fn the_markdown_table() {
        let selected = select(workloads(false), None);
        let rows = table_rows();
        let table = markdown_table(&selected, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 8, "{table}");
        assert!(
            lines[0].starts_with("| workload | server | msgs/s | msgs/s, lowest-highest | MB/s |")
        );
        assert!(lines[1].starts_with("|---|---|--:|"));
        assert_eq!(
            lines[2],
            "| 64x64 | ours | 280,000 | 252,000–336,000 | 17.92 | 225 | 450 | 900 | 1.00 µs/msg \
             | 3.00 µs/msg | 2.0 MiB | 2.00x | 1.00x | 0.50x |"
        );
        assert!(lines[3].starts_with("| 64x64 | tokio | 140,000 |"));
        assert!(lines[3].ends_with("| 1.00x | 1.00x | 1.00x |"));
        assert!(lines[4].starts_with("| 64x64 | epoll (2/3 ok) | 210,000 |"));
        assert!(lines[4].ends_with("| 1.50x | 1.80x | 0.75x |"));
        assert_eq!(
            lines[5],
            "| idle | ours | — | — | — | — | — | — | 0.05% core | 0.10% core | 1.0 MiB | — \
             | 0.25x | 0.25x |"
        );
        assert_eq!(
            lines[7],
            "| idle | epoll (0/3 ok) | failed | — | — | — | — | — | — | — | — | — | — | — |"
        );
        // Every row has as many cells as the header.
        let cells = |line: &str| line.matches('|').count();
        assert!(
            lines.iter().all(|line| cells(line) == cells(lines[0])),
            "{table}"
        );
    }

    /// Ours against epoll, epoll against tokio, and tokio's system share; idle has no row.
    #[test]
    fn the_floor_table() {
        let selected = select(workloads(false), None);
        let table = floor_table(&selected, &table_rows());
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("| workload | ours vs epoll: msgs/s |"),
            "{table}"
        );
        assert_eq!(lines[1], "|---|--:|--:|--:|--:|--:|--:|");
        // 280k against 210k msgs/s, 3.0 against 4.5 µs; 4.5 against tokio's 6.0. System time
        // against tokio's 6.0: ours 2.0, tokio 5.0, epoll 2.7.
        let row = |name: &str| {
            let start = format!("| {name} |");
            lines.iter().copied().find(|line| line.starts_with(&start))
        };
        assert_eq!(
            row("64x64"),
            Some("| 64x64 | 1.33x | 0.67x | 0.75x | 0.33x | 0.83x | 0.45x |")
        );
        // A workload without runs gets a row of dashes; idle gets none.
        assert_eq!(row("idle"), None, "{table}");
        assert_eq!(
            row("storm"),
            Some("| storm | — | — | — | — | — | — |"),
            "{table}"
        );
    }

    /// `--render` rebuilds the report from `raw.txt` alone: the medians of the runs there, a
    /// failed run counted but left out, the header of the old `results.md` kept.
    #[test]
    fn render_rewrites_the_report_from_raw_txt() {
        let dir = std::env::temp_dir().join(format!("xtask-render-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let load = |round: u32, server: &str, status: &str, rate: f64, user_s: f64| {
            format!(
                "round={round} workload=64x64 server={server} status={status} mode=pingpong \
                 messages=1000000 bytes=64000000 msgs_per_sec={rate} mb_per_sec=1.0 p50_us=10 \
                 p99_us=20 p999_us=30 mismatches=0 resets=0 short=0 server_user_s={user_s} \
                 server_sys_s=9.0 server_peak_rss_kib=2048"
            )
        };
        let raw = [
            load(1, "ours", "ok", 90_000.0, 1.0),
            load(1, "tokio", "ok", 80_000.0, 3.0),
            load(1, "epoll", "failed", 1.0, 0.0),
            String::new(),
            load(2, "ours", "ok", 110_000.0, 3.0),
            load(2, "tokio", "ok", 60_000.0, 3.0),
            load(2, "epoll", "ok", 100_000.0, 1.0),
            "round=2 workload=idle server=ours status=ok mode=idle secs=5.000 \
             server_user_s=0.010 server_sys_s=0.040 server_cpu_pct=1.000 \
             server_peak_rss_kib=4096"
                .to_owned(),
        ];
        fs::write(dir.join("raw.txt"), raw.join("\n")).unwrap();
        fs::write(dir.join("results.md"), "Machine: kept\n\nold table\n").unwrap();
        let options = Options {
            out: Some(dir.clone()),
            render: true,
            ..options(false, 3)
        };
        render(Path::new("/nonexistent"), &options).unwrap();
        let text = fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(text.starts_with("Machine: kept\n\n| workload |"), "{text}");
        assert!(!text.contains("old table"), "{text}");
        assert!(text.contains("median of 2 run(s)"), "{text}");
        // Ours: the median of 90k and 110k msgs/s, and of 10 and 12 µs of CPU per message
        // (tokio's is 12, the epoll loop's 10).
        assert!(
            text.contains("| 64x64 | ours | 100,000 | 90,000–110,000 |"),
            "{text}"
        );
        assert!(text.contains("| 11.00 µs/msg |"), "{text}");
        assert!(
            text.contains("| 64x64 | epoll (1/2 ok) | 100,000 |"),
            "{text}"
        );
        assert!(text.contains("| idle | ours |"), "{text}");
        assert!(text.contains("| 1.00% core |"), "{text}");
        // Not a whole sweep: no sweep file.
        assert!(!dir.join("sweep.txt").exists());

        // A line that is not a run's is refused, with its number.
        fs::write(
            dir.join("raw.txt"),
            format!("{}\nround=1 workload=nope", raw[0]),
        )
        .unwrap();
        let err = render(Path::new("/nonexistent"), &options).unwrap_err();
        assert!(err.contains("line 2") && err.contains("`nope`"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sweep_file_and_table() {
        let selected = select(workloads(false), Some("sweep"));
        let rows: Vec<Row> = sweep_points(&selected)
            .into_iter()
            .flat_map(|(c, w)| {
                ServerKind::ALL.map(|server| Row {
                    workload: w.name,
                    server,
                    runs: 1,
                    // Epoll's 512 run failed: its point is left out.
                    ok: usize::from(!(server == ServerKind::Epoll && c == 512)),
                    median: metrics(f64::from(c) * 1000.0, f64::from(c) + 0.25, 1.0, 2.0),
                    msgs_range: None,
                })
            })
            .collect();
        let text = sweep_text(&selected, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11, "{text}");
        assert_eq!(
            lines[0],
            "server=ours connections=1 msgs_per_sec=1000.0 p99_us=1.2"
        );
        assert_eq!(
            lines[3],
            "server=ours connections=512 msgs_per_sec=512000.0 p99_us=512.2"
        );
        assert_eq!(
            lines[4],
            "server=tokio connections=1 msgs_per_sec=1000.0 p99_us=1.2"
        );
        assert_eq!(
            lines[10],
            "server=epoll connections=64 msgs_per_sec=64000.0 p99_us=64.2"
        );
        let table = sweep_table(&selected, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert_eq!(
            lines[0],
            "| connections | ours msgs/s | tokio msgs/s | epoll msgs/s | ours p99 µs | \
             tokio p99 µs | epoll p99 µs |"
        );
        assert_eq!(lines[5], "| 512 | 512,000 | 512,000 | — | 512 | 512 | — |");
    }

    #[test]
    fn results_markdown_has_header_table_and_sweep() {
        let selected = workloads(true);
        let text = results_markdown("Machine: x", &selected, &[], 1);
        assert!(text.starts_with("Machine: x\n\n| workload |"));
        assert!(text.contains("median of 1 run(s)"));
        assert!(text.contains("| workload | ours vs epoll: msgs/s |"));
        assert!(text.contains("\nSweep: 64 B ping-pong"));
        let only_storm = select(workloads(true), Some("storm"));
        let text = results_markdown("h", &only_storm, &[], 1);
        assert!(!text.contains("Sweep"));
    }

    #[test]
    fn the_machine_header() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 \
                       64-Core Processor\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        assert_eq!(cpu_model("processor\t: 0\nmodel name\t:\n"), None);
        assert_eq!(cpu_model(""), None);
        let mut machine = Machine {
            cpus: "2".to_owned(),
            model: "AMD EPYC".to_owned(),
            kernel: "6.1.0".to_owned(),
            congestion: "bbr".to_owned(),
            client_congestion: Some("cubic".to_owned()),
        };
        assert_eq!(
            header_line(&machine, "2025-01-02 03:04 UTC", &options(false, 3)),
            "Machine: 2 CPUs (nproc), AMD EPYC, Linux 6.1.0, TCP congestion control bbr (client: \
             cubic); 2025-01-02 03:04 UTC; 3 rounds, interleaved, medians."
        );
        machine.client_congestion = None;
        let header = header_line(&machine, "d", &options(false, 1));
        assert!(
            header.contains("control bbr (client: the default); d"),
            "{header}"
        );
        let quick = header_line(&machine, "d", &options(true, 1));
        assert!(
            quick.contains("; 1 round; --quick: 2 s runs, bulk 8 MiB"),
            "{quick}"
        );
    }

    #[test]
    fn the_client_uses_cubic_where_the_kernel_has_it() {
        assert_eq!(client_congestion("reno bbr cubic\n"), Some("cubic"));
        assert_eq!(client_congestion("cubic"), Some("cubic"));
        assert_eq!(client_congestion("reno bbr"), None);
        assert_eq!(client_congestion("reno cubicle"), None);
        assert_eq!(client_congestion(""), None);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31 23:59 UTC");
        assert_eq!(utc_date(4_107_542_400), "2100-03-01 00:00 UTC");
    }

    #[test]
    fn proc_files() {
        let stat = "4242 (tokio (w) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 \
                    100 1000000 300 18446744073709551615";
        assert_eq!(parse_stat_times(stat), Some((123, 45)));
        assert_eq!(parse_stat_times("1 (a) S 1 2"), None);
        assert_eq!(parse_stat_times("garbage"), None);
        let status = "Name:\tserver\nVmPeak:\t  20000 kB\nVmHWM:\t    11976 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(11_976));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn commands_and_stderr_in_messages() {
        assert_eq!(
            show_command(
                Path::new("/t/release/chart"),
                &args(&["--title", "a b", "--x", ""])
            ),
            "chart --title 'a b' --x ''"
        );
        assert_eq!(
            stderr_tail("loadgen", "  \n"),
            "\n(loadgen wrote nothing to stderr)"
        );
        assert_eq!(
            stderr_tail("loadgen", "error: reset\n"),
            "\nloadgen's stderr:\n  error: reset"
        );
        let long: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let tail = stderr_tail("x", &long);
        assert!(
            tail.contains("(10 earlier lines not shown)\n  line 10\n"),
            "{tail}"
        );
        assert!(tail.ends_with("line 49"));
    }

    /// The process runner on real, harmless commands: output, failure, and a deadline that
    /// kills.
    #[test]
    fn processes_run_under_a_deadline() {
        let sh = Path::new("sh");
        let out = run_with_deadline(
            sh,
            &args(&["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");

        let started = Instant::now();
        let err = run_with_deadline(
            sh,
            &args(&["-c", "echo partial >&2; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .err()
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            err.contains("`sh -c 'echo partial >&2; exec sleep 30'` did not finish"),
            "{err}"
        );
        assert!(err.contains("killed it"), "{err}");

        let err = run_with_deadline(
            Path::new("/nonexistent/bench-binary"),
            &[],
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(err.starts_with("could not start `bench-binary`"), "{err}");
    }
}
