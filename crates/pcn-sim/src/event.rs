//! The discrete-event clock: a priority queue of future events.
//!
//! Time is an integer number of microseconds, so no rounding ever reorders events. Events
//! due at the same microsecond come out in the order they were scheduled (a sequence number
//! breaks ties), which makes a run a pure function of its inputs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time in microseconds.
pub type TimeUs = u64;

pub const US_PER_MS: u64 = 1_000;
pub const US_PER_S: u64 = 1_000_000;

struct Entry<E> {
    time_us: TimeUs,
    sequence: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_us, self.sequence) == (other.time_us, other.sequence)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_us, other.sequence).cmp(&(self.time_us, self.sequence))
    }
}

/// Future events ordered by (time, scheduling order).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    sequence: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            sequence: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, time_us: TimeUs, event: E) {
        self.sequence += 1;
        self.heap.push(Entry {
            time_us,
            sequence: self.sequence,
            event,
        });
    }

    pub fn pop(&mut self) -> Option<(TimeUs, E)> {
        self.heap.pop().map(|entry| (entry.time_us, entry.event))
    }

    pub fn peek_time_us(&self) -> Option<TimeUs> {
        self.heap.peek().map(|entry| entry.time_us)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scheduled: &[(TimeUs, &'static str)], expected: &[&'static str]) {
        let mut queue = EventQueue::default();
        for &(time, name) in scheduled {
            queue.push(time, name);
        }
        let mut order = Vec::new();
        let mut last = 0;
        while let Some((time, name)) = queue.pop() {
            assert!(time >= last, "time went backwards");
            last = time;
            order.push(name);
        }
        assert_eq!(order, expected);
    }

    #[test]
    fn events_come_out_by_time_then_scheduling_order() {
        check(&[], &[]);
        check(&[(5, "b"), (1, "a"), (9, "c")], &["a", "b", "c"]);
        check(
            &[(3, "first"), (3, "second"), (1, "early"), (3, "third")],
            &["early", "first", "second", "third"],
        );
    }
}
