//! The idle clock: connections in the order they last made progress, oldest first.
//!
//! Progress (bytes read from a client, bytes its socket took) moves a connection to the back
//! of the list in O(1); the one at the front is the only one that can have timed out, so
//! finding every timed-out connection costs O(1) per connection found, never a scan. The list
//! is threaded through a vector indexed by connection index, so it allocates only when a new
//! index first appears.

use std::time::Instant;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    /// When the connection last made progress; meaningful while linked.
    at: Instant,
    linked: bool,
}

/// Connection indices ordered by their last progress.
pub(crate) struct Activity {
    links: Vec<Link>,
    head: u32,
    tail: u32,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            links: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Connection `index` made progress at `now`: it goes to the back.
    ///
    /// `now` must not be earlier than any time given before, or the list would be out of order;
    /// callers pass one `Instant::now()` per batch, which is monotonic.
    pub(crate) fn touch(&mut self, index: u32, now: Instant) {
        let i = index as usize;
        if self.links.len() <= i {
            let unlinked = Link {
                prev: NIL,
                next: NIL,
                at: now,
                linked: false,
            };
            self.links.resize(i + 1, unlinked);
        }
        self.remove(index);
        self.links[i] = Link {
            prev: self.tail,
            next: NIL,
            at: now,
            linked: true,
        };
        match self.tail {
            NIL => self.head = index,
            tail => self.links[tail as usize].next = index,
        }
        self.tail = index;
    }

    /// Takes connection `index` off the clock (it is closing, or closed).
    pub(crate) fn remove(&mut self, index: u32) {
        let Some(&link) = self.links.get(index as usize) else {
            return;
        };
        if !link.linked {
            return;
        }
        match link.prev {
            NIL => self.head = link.next,
            prev => self.links[prev as usize].next = link.next,
        }
        match link.next {
            NIL => self.tail = link.prev,
            next => self.links[next as usize].prev = link.prev,
        }
        self.links[index as usize].linked = false;
    }

    /// The connection that made progress longest ago, and when.
    pub(crate) fn oldest(&self) -> Option<(u32, Instant)> {
        (self.head != NIL).then(|| (self.head, self.links[self.head as usize].at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn order(activity: &mut Activity) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some((index, _)) = activity.oldest() {
            out.push(index);
            activity.remove(index);
        }
        out
    }

    #[test]
    fn the_oldest_is_the_one_touched_longest_ago() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut activity = Activity::new();
        assert_eq!(activity.oldest(), None);
        for (index, ms) in [(5, 0), (0, 1), (9, 2), (3, 3)] {
            activity.touch(index, at(ms));
        }
        assert_eq!(activity.oldest(), Some((5, at(0))));
        // Touching the head, the tail and a middle one moves each to the back.
        activity.touch(5, at(4));
        activity.touch(3, at(5));
        activity.touch(9, at(6));
        assert_eq!(activity.oldest(), Some((0, at(1))));
        assert_eq!(order(&mut activity), [0, 5, 3, 9]);
    }

    #[test]
    fn removing_unlinks_anywhere_and_twice_is_harmless() {
        let now = Instant::now();
        let mut activity = Activity::new();
        for index in 0..6 {
            activity.touch(index, now);
        }
        activity.remove(0); // head
        activity.remove(5); // tail
        activity.remove(3); // middle
        activity.remove(3);
        activity.remove(77); // never seen
        assert_eq!(order(&mut activity), [1, 2, 4]);
        // Emptied, it works as new.
        activity.touch(2, now);
        assert_eq!(order(&mut activity), [2]);
    }
}
