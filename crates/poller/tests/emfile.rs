//! Running out of descriptors: `accept_all` sheds the queue instead of stalling an
//! edge-triggered listener. The body runs in a child process with a low `RLIMIT_NOFILE`, so the
//! limit cannot disturb other tests.

mod common;

use common::{MAX_ROUNDS, PATIENCE, connect, ipv4_loopback, wait_for, watched};
use poller::{Drained, Event, Events, Interest, Listener, Poller, Stream, Token};
use rustix::process::{Pid, Resource, Rlimit, Signal, getrlimit, kill_process, setrlimit};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// Set in the child's environment: only there does [`emfile_child`] do anything.
const CHILD_ENV: &str = "POLLER_EMFILE_CHILD";
/// The child's last line when every check passed; a child that ran no test cannot print it.
const CHILD_DONE: &str = "emfile child: shed 3, then accepted 1";

const LISTENER: Token = Token(0);
const CONNECTION: Token = Token(1);
const QUEUED_CLIENTS: usize = 3;

#[test]
fn accept_all_survives_emfile_in_a_child_process() {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(CHILD_DONE),
        "the child did not finish:\n{stdout}\n{stderr}"
    );
}

/// Waits for the child on a helper thread; kills it if it has not finished within the time.
fn wait_bounded(child: std::process::Child) -> Output {
    // Child ids are positive and fit an i32 on Linux.
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(PATIENCE * 3) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = kill_process(pid, Signal::KILL);
            panic!("the child did not finish within {:?}", PATIENCE * 3);
        }
    }
}

/// The child's side. In a normal test run it returns at once.
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut listener = Listener::bind(ipv4_loopback()).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let (poller, mut events) = watched(&listener, LISTENER, Interest::READABLE | Interest::EDGE);
    let mut queued: Vec<_> = (0..QUEUED_CLIENTS).map(|_| connect(server_addr)).collect();

    let (ballast, limit) = use_up_descriptors();
    println!(
        "descriptor limit lowered to {limit}; {} ballast files",
        ballast.len()
    );

    let shed = drain_until(
        &poller,
        &mut events,
        &mut listener,
        |_| panic!("accepted a connection with no descriptor to spare"),
        |total| total.shed >= QUEUED_CLIENTS,
    );
    assert_eq!(
        shed,
        Drained {
            accepted: 0,
            shed: QUEUED_CLIENTS
        }
    );

    // The shed clients were told at once: end of stream, or a reset.
    for client in &mut queued {
        match client.read(&mut [0; 1]) {
            Ok(0) => {}
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("a shed client saw {other:?}"),
        }
    }

    // Make room for a few descriptors: one for a new client, one for the server's end of it,
    // and slack. Raising the limit, rather than dropping ballast, makes room whatever the
    // number of gaps there were to fill. The listener must still hear about the new
    // connection: no stall.
    set_soft_limit(limit + 4);
    let mut client = connect(server_addr);
    let mut accepted = Vec::new();
    let drained = drain_until(
        &poller,
        &mut events,
        &mut listener,
        |stream| accepted.push(stream),
        |total| total.accepted > 0,
    );
    assert_eq!(
        drained,
        Drained {
            accepted: 1,
            shed: 0
        }
    );

    let stream = &accepted[0];
    poller.add(stream, CONNECTION, Interest::READABLE).unwrap();
    client.write_all(b"ping").unwrap();
    wait_for(&poller, &mut events, CONNECTION, Event::is_readable);
    let mut buffer = [0; 16];
    let n = stream.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"ping");
    assert_eq!(stream.send(b"pong").unwrap(), 4);
    let mut reply = [0; 4];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong");

    println!("{CHILD_DONE}");
}

/// Fills every free descriptor number below the highest one in use, then lowers the soft
/// limit to the next number: from then on, any new descriptor fails with `EMFILE`. Returns the
/// files that fill the gaps (they must stay open) and the lowered limit.
fn use_up_descriptors() -> (Vec<File>, u64) {
    let highest = fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap();
    let mut ballast = Vec::new();
    // Each open takes the lowest free number; once past `highest`, every number below is used.
    let first_free = loop {
        assert!(
            ballast.len() < MAX_ROUNDS,
            "could not get past descriptor {highest}"
        );
        let file = File::open("/dev/null").unwrap();
        if file.as_raw_fd() > highest {
            break file.as_raw_fd();
        }
        ballast.push(file);
    };
    // The file that got `first_free` was dropped on `break`; that number becomes the limit.
    let limit = u64::try_from(first_free).unwrap();
    set_soft_limit(limit);
    assert_eq!(
        File::open("/dev/null").unwrap_err().raw_os_error(),
        Some(rustix::io::Errno::MFILE.raw_os_error())
    );
    (ballast, limit)
}

/// Sets the soft `RLIMIT_NOFILE`, lower or higher,, keeping the hard limit.
fn set_soft_limit(current: u64) {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(current),
            maximum: hard,
        },
    )
    .unwrap();
}

/// Waits for listener events and drains the queue on each, until `done` says the totals are
/// enough (or time is up); returns the totals.
fn drain_until(
    poller: &Poller,
    events: &mut Events,
    listener: &mut Listener,
    mut on_accept: impl FnMut(Stream),
    done: impl Fn(&Drained) -> bool,
) -> Drained {
    let mut total = Drained::default();
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        if done(&total) || Instant::now() > deadline {
            break;
        }
        wait_for(poller, events, LISTENER, Event::is_readable);
        let drained = listener
            .accept_all(|stream, _peer| on_accept(stream))
            .unwrap();
        total.accepted += drained.accepted;
        total.shed += drained.shed;
    }
    total
}
