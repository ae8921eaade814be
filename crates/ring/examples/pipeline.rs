//! A two-thread pipeline through a ring of byte buffers, the shape of the reverse server:
//! the producer fills slots in place, the consumer reverses them in place and checks them.
//!
//! Run with `cargo run -p ring --example pipeline --release`.

use std::time::Instant;

/// Bytes per slot, as the server's `--buffer-size`.
const BUFFER_SIZE: usize = 4096;
/// Events sent through the ring.
const EVENTS: usize = 200_000;

fn main() {
    // Every slot is a buffer allocated here, once; nothing is allocated after this line.
    let (mut producer, mut consumer) =
        ring::channel(1024, |_| Vec::with_capacity(BUFFER_SIZE)).expect("1024 is a power of two");

    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for event in 0..EVENTS {
            // Wait for one free slot and fill it in place, as a `read(2)` would.
            let mut claim = producer
                .claim(1)
                .expect("the consumer outlives the producer");
            let buffer = &mut claim[0];
            buffer.clear();
            buffer.extend((0..100).map(|i| (event + i) as u8));
            claim.publish();
        }
        // Dropping the producer tells the consumer that the stream is over.
    });

    let (mut events, mut bytes) = (0usize, 0usize);
    while let Ok(mut batch) = consumer.read() {
        for buffer in batch.iter_mut() {
            buffer.reverse();
            // The last byte is now the first one the producer wrote.
            assert_eq!(buffer.last().copied(), Some(events as u8));
            events += 1;
            bytes += buffer.len();
        }
        // The batch is released here, with one store, however many events it held.
    }
    writer.join().expect("the producer thread panicked");

    let elapsed = started.elapsed();
    assert_eq!(events, EVENTS);
    println!(
        "{events} events, {bytes} bytes reversed in place in {elapsed:.2?} ({:.1} M events/s)",
        events as f64 / elapsed.as_secs_f64() / 1e6
    );
}
