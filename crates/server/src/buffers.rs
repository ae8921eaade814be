//! Pooled bytes for what a connection keeps between reads: the start of an unfinished line or
//! frame (its carry) and the output its socket has not taken yet (its pending output).
//!
//! A [`Pool`] hands out fixed-size blocks, allocating one only when none is free, and takes
//! them back when a [`Chain`] no longer needs them; after warm-up the data path allocates
//! nothing. A chain is a linked list of blocks threaded through the pool by block number, so a
//! chain itself is a few integers and never allocates either. Blocks are taken only as bytes
//! arrive: a client that announces a 1 MiB frame and sends 10 bytes holds one block.
//!
//! The pool has a limit. Going past it is allowed (the bytes in hand must be kept somewhere)
//! but [`Pool::exhausted`] then tells the worker to pause reading from the connection that
//! asked; see ARCHITECTURE.md for why that bounds the overshoot.

use std::io::IoSlice;
use std::ops::Range;

/// Bytes per block.
pub(crate) const BLOCK: usize = 4096;

/// "No block": the end of a list.
const NIL: u32 = u32::MAX;

/// Fixed-size blocks, recycled through a free list.
pub(crate) struct Pool {
    blocks: Vec<Box<[u8]>>,
    /// `next[b]`: the block after `b` in its chain or in the free list.
    next: Vec<u32>,
    free: u32,
    in_use: usize,
    limit: usize,
    high_water: usize,
}

impl Pool {
    /// A pool that reports exhaustion once `limit_bytes` are in use (rounded up to a block).
    pub(crate) fn new(limit_bytes: usize) -> Self {
        Self {
            blocks: Vec::new(),
            next: Vec::new(),
            free: NIL,
            in_use: 0,
            limit: limit_bytes.div_ceil(BLOCK).max(1),
            high_water: 0,
        }
    }

    /// Whether the blocks in use reached the limit: whoever asks for more should pause.
    pub(crate) fn exhausted(&self) -> bool {
        self.in_use >= self.limit
    }

    /// Whether enough came back that connections paused for the pool may go on: a quarter of
    /// the pool is free, so that they do not pause again at once.
    pub(crate) fn has_room(&self) -> bool {
        self.in_use <= self.limit - self.limit / 4
    }

    /// Bytes in blocks that are in use.
    pub(crate) fn bytes_in_use(&self) -> usize {
        self.in_use * BLOCK
    }

    /// The most bytes in use at once so far.
    pub(crate) fn high_water_bytes(&self) -> usize {
        self.high_water * BLOCK
    }

    fn take(&mut self) -> u32 {
        let block = if self.free == NIL {
            // Block numbers stay far below `NIL`: the pool's limit bounds them (see `Config`).
            let block = self.blocks.len() as u32;
            self.blocks.push(vec![0; BLOCK].into_boxed_slice());
            self.next.push(NIL);
            block
        } else {
            let block = self.free;
            self.free = self.next[block as usize];
            block
        };
        self.next[block as usize] = NIL;
        self.in_use += 1;
        self.high_water = self.high_water.max(self.in_use);
        block
    }

    fn give(&mut self, block: u32) {
        self.next[block as usize] = self.free;
        self.free = block;
        self.in_use -= 1;
    }

    /// Appends `src[range]` to `dst`. The two chains never share a block, but both live in the
    /// pool, so each piece goes through a block-sized buffer on the stack.
    pub(crate) fn copy(&mut self, src: &Chain, range: Range<usize>, dst: &mut Chain) {
        let mut scratch = [0; BLOCK];
        let mut at = range.start;
        while at < range.end {
            let len = {
                let mut segments = [IoSlice::new(&[]); 1];
                let (count, _) = src.slices(self, at..range.end, &mut segments);
                if count == 0 {
                    return;
                }
                let len = segments[0].len();
                scratch[..len].copy_from_slice(&segments[0]);
                len
            };
            dst.push_back(self, &scratch[..len]);
            at += len;
        }
    }
}

/// A byte string kept in pool blocks. Every block is full but the first, whose bytes start at
/// `start`, and the last, whose bytes end at `end`. An empty chain holds no block.
///
/// Not `Clone`: a chain owns its blocks, and two copies would give them back twice.
#[derive(Debug)]
pub(crate) struct Chain {
    head: u32,
    tail: u32,
    start: usize,
    end: usize,
    len: usize,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            start: 0,
            end: 0,
            len: 0,
        }
    }
}

impl Chain {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`.
    pub(crate) fn push_back(&mut self, pool: &mut Pool, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.head == NIL {
                let block = pool.take();
                (self.head, self.tail, self.start, self.end) = (block, block, 0, 0);
            } else if self.end == BLOCK {
                let block = pool.take();
                pool.next[self.tail as usize] = block;
                (self.tail, self.end) = (block, 0);
            }
            let n = bytes.len().min(BLOCK - self.end);
            pool.blocks[self.tail as usize][self.end..self.end + n].copy_from_slice(&bytes[..n]);
            self.end += n;
            self.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Puts `bytes` in front, reversed: the chain becomes `reverse(bytes) ++ self`.
    ///
    /// A carry is kept this way, so that `reverse(carried ++ more)` is `reverse(more)` (done in
    /// place in the ring slot) followed by the chain as it stands: no pass over the carry.
    pub(crate) fn push_front_reversed(&mut self, pool: &mut Pool, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.head == NIL {
                let block = pool.take();
                (self.head, self.tail, self.start, self.end) = (block, block, BLOCK, BLOCK);
            } else if self.start == 0 {
                let block = pool.take();
                pool.next[block as usize] = self.head;
                (self.head, self.start) = (block, BLOCK);
            }
            let n = bytes.len().min(self.start);
            let to = &mut pool.blocks[self.head as usize][self.start - n..self.start];
            to.copy_from_slice(&bytes[..n]);
            to.reverse();
            self.start -= n;
            self.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Drops the first `n` bytes (all of them if there are fewer), giving emptied blocks back.
    pub(crate) fn consume(&mut self, pool: &mut Pool, mut n: usize) {
        while n > 0 && self.head != NIL {
            let head_end = if self.head == self.tail {
                self.end
            } else {
                BLOCK
            };
            let k = n.min(head_end - self.start);
            self.start += k;
            self.len -= k;
            n -= k;
            if self.start == head_end {
                let next = pool.next[self.head as usize];
                pool.give(self.head);
                if self.head == self.tail {
                    *self = Self::default();
                } else {
                    (self.head, self.start) = (next, 0);
                }
            }
        }
    }

    /// Empties the chain, giving its blocks back.
    pub(crate) fn clear(&mut self, pool: &mut Pool) {
        self.consume(pool, self.len);
    }

    /// Fills `out` with the pieces of `self[range]`, in order; returns how many pieces and how
    /// many bytes they hold (less than the range when `out` is too short).
    pub(crate) fn slices<'p>(
        &self,
        pool: &'p Pool,
        range: Range<usize>,
        out: &mut [IoSlice<'p>],
    ) -> (usize, usize) {
        let range = range.start.min(self.len)..range.end.min(self.len);
        let (mut count, mut bytes) = (0, 0);
        // `at` is the chain offset where block `block`'s bytes begin.
        let (mut block, mut at, mut from) = (self.head, 0, self.start);
        while block != NIL && count < out.len() && at < range.end {
            let to = if block == self.tail { self.end } else { BLOCK };
            let held = at..at + (to - from);
            let lo = range.start.max(held.start);
            let hi = range.end.min(held.end);
            if lo < hi {
                let offset = from + (lo - held.start);
                out[count] = IoSlice::new(&pool.blocks[block as usize][offset..offset + hi - lo]);
                count += 1;
                bytes += hi - lo;
            }
            at = held.end;
            block = pool.next[block as usize];
            from = 0;
        }
        (count, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(chain: &Chain, pool: &Pool) -> Vec<u8> {
        let mut out = vec![IoSlice::new(&[]); chain.len() / BLOCK + 2];
        let (count, bytes) = chain.slices(pool, 0..chain.len(), &mut out);
        assert_eq!(bytes, chain.len());
        out[..count]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn push_back_and_consume_keep_fifo_order_at_every_size() {
        for size in [0, 1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            let mut pool = Pool::new(1 << 20);
            let mut chain = Chain::default();
            let mut model = Vec::new();
            for round in 0..3u8 {
                let piece = bytes(size, round);
                chain.push_back(&mut pool, &piece);
                model.extend_from_slice(&piece);
                assert_eq!(contents(&chain, &pool), model, "size {size} round {round}");
                let eaten = size / 2 + 1;
                chain.consume(&mut pool, eaten);
                model.drain(..eaten.min(model.len()));
                assert_eq!(contents(&chain, &pool), model, "size {size} round {round}");
                assert!(pool.in_use <= model.len().div_ceil(BLOCK) + 1);
            }
            chain.clear(&mut pool);
            assert!(chain.is_empty());
            assert_eq!(pool.in_use, 0, "every block came back");
        }
    }

    #[test]
    fn push_front_reversed_keeps_the_reversal_of_everything_pushed() {
        // Pieces that end exactly at, just before and just after block boundaries.
        for sizes in [
            &[1, 1, 1][..],
            &[BLOCK, 1],
            &[BLOCK - 1, 1, 1],
            &[3, BLOCK * 2 + 7, 5],
        ] {
            let mut pool = Pool::new(1 << 20);
            let mut chain = Chain::default();
            let mut model = Vec::new();
            for (n, &size) in sizes.iter().enumerate() {
                let piece = bytes(size, n as u8);
                chain.push_front_reversed(&mut pool, &piece);
                model.extend_from_slice(&piece);
                let mut reversed = model.clone();
                reversed.reverse();
                assert_eq!(contents(&chain, &pool), reversed, "sizes {sizes:?}");
            }
            // A carried `\r` that turns out to be part of `\r\n` is the chain's first byte.
            chain.consume(&mut pool, 1);
            assert_eq!(chain.len(), model.len() - 1);
            chain.clear(&mut pool);
            assert_eq!(pool.in_use, 0);
        }
    }

    #[test]
    fn slices_cut_any_range_and_stop_when_out_is_full() {
        let mut pool = Pool::new(1 << 20);
        let mut chain = Chain::default();
        let model = bytes(3 * BLOCK + 100, 9);
        chain.push_back(&mut pool, &model);
        chain.consume(&mut pool, 50);
        let model = &model[50..];
        for range in [
            0..0,
            0..1,
            10..BLOCK + 10,
            BLOCK - 50..BLOCK - 49,
            0..model.len(),
        ] {
            let mut out = [IoSlice::new(&[]); 8];
            let (count, n) = chain.slices(&pool, range.clone(), &mut out);
            let got: Vec<u8> = out[..count]
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            assert_eq!(n, got.len());
            assert_eq!(got, &model[range]);
        }
        let mut one = [IoSlice::new(&[]); 1];
        let (count, n) = chain.slices(&pool, 0..model.len(), &mut one);
        assert_eq!((count, n), (1, BLOCK - 50));
        // A range past the end is cut to it.
        let mut out = [IoSlice::new(&[]); 8];
        assert_eq!(
            chain.slices(&pool, 5..usize::MAX, &mut out).1,
            model.len() - 5
        );
    }

    #[test]
    fn copy_appends_a_range_of_one_chain_to_another() {
        let mut pool = Pool::new(1 << 20);
        let (mut src, mut dst) = (Chain::default(), Chain::default());
        let model = bytes(2 * BLOCK + 3, 1);
        src.push_back(&mut pool, &model);
        dst.push_back(&mut pool, b"head:");
        pool.copy(&src, 5..2 * BLOCK + 1, &mut dst);
        let mut expected = b"head:".to_vec();
        expected.extend_from_slice(&model[5..2 * BLOCK + 1]);
        assert_eq!(contents(&dst, &pool), expected);
    }

    #[test]
    fn blocks_are_taken_as_bytes_arrive_recycled_and_exhaustion_is_reported() {
        let mut pool = Pool::new(4 * BLOCK);
        let mut chain = Chain::default();
        chain.push_back(&mut pool, &[1; 10]);
        assert_eq!(
            pool.bytes_in_use(),
            BLOCK,
            "ten bytes hold one block, not more"
        );
        chain.push_back(&mut pool, &vec![2; 3 * BLOCK]);
        assert!(pool.exhausted());
        // Past the limit the bytes are still kept: the caller pauses the connection instead.
        chain.push_back(&mut pool, &[3; BLOCK]);
        assert_eq!(pool.bytes_in_use(), 5 * BLOCK);
        assert!(!pool.has_room());
        chain.clear(&mut pool);
        assert!(pool.has_room() && !pool.exhausted());
        assert_eq!(pool.high_water_bytes(), 5 * BLOCK);
        // Recycled: no new block is made for the next chain.
        chain.push_back(&mut pool, &vec![4; 5 * BLOCK]);
        assert_eq!(pool.blocks.len(), 5);
        chain.clear(&mut pool);
    }
}
