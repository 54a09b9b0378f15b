//! The discrete-event clock: a priority queue of future events.
//!
//! Time is an integer number of microseconds, so no rounding ever reorders events. Events
//! due at the same microsecond come out in the order they were scheduled (a sequence number
//! breaks ties), which makes a run a pure function of its inputs.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

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

/// Lanes for events scheduled a fixed delay ahead (see [`EventQueue`]).
const LANES_MAX: usize = 16;

/// Future events ordered by (time, scheduling order).
///
/// Most events are scheduled a constant delay after the event being handled (a hop delay,
/// an end-host link delay, the transaction timeout). Since the clock never goes back, the
/// events of one such delay are scheduled in time order, so a FIFO lane per delay keeps them
/// sorted for free; only the others go to a binary heap. A pop takes the earliest head of the
/// lanes and the heap, so the order is exactly the heap-only order, at a fraction of the
/// cost (the heap stays small and lanes are read front to back).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    /// Per lane: its delay and its events, in (time, sequence) order.
    lanes: Vec<(TimeUs, VecDeque<Entry<E>>)>,
    /// Time of the last event popped: pushes are never earlier.
    now_us: TimeUs,
    sequence: u64,
    len: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            lanes: Vec::new(),
            now_us: 0,
            sequence: 0,
            len: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, time_us: TimeUs, event: E) {
        assert!(time_us >= self.now_us, "event scheduled in the past");
        self.sequence += 1;
        self.len += 1;
        let entry = Entry {
            time_us,
            sequence: self.sequence,
            event,
        };
        let delay = time_us - self.now_us;
        // The lane of this delay; else an empty lane, which takes this delay; else the heap.
        let lane = match self.lanes.iter().position(|(d, _)| *d == delay) {
            Some(index) => Some(index),
            None => match self.lanes.iter().position(|(_, lane)| lane.is_empty()) {
                Some(index) => {
                    self.lanes[index].0 = delay;
                    Some(index)
                }
                None if self.lanes.len() < LANES_MAX => {
                    self.lanes.push((delay, VecDeque::new()));
                    Some(self.lanes.len() - 1)
                }
                None => None,
            },
        };
        match lane {
            Some(index) => {
                let lane = &mut self.lanes[index].1;
                debug_assert!(lane
                    .back()
                    .is_none_or(|last| (last.time_us, last.sequence) < (time_us, entry.sequence)));
                lane.push_back(entry);
            }
            None => self.heap.push(entry),
        }
    }

    /// Where the earliest event is: `Some(lane)` or `None` for the heap.
    fn earliest(&self) -> Option<Option<usize>> {
        let mut best: Option<(TimeUs, u64, Option<usize>)> = self
            .heap
            .peek()
            .map(|entry| (entry.time_us, entry.sequence, None));
        for (index, (_, lane)) in self.lanes.iter().enumerate() {
            if let Some(head) = lane.front() {
                if best.is_none_or(|(time, sequence, _)| {
                    (head.time_us, head.sequence) < (time, sequence)
                }) {
                    best = Some((head.time_us, head.sequence, Some(index)));
                }
            }
        }
        best.map(|(_, _, at)| at)
    }

    pub fn pop(&mut self) -> Option<(TimeUs, E)> {
        let entry = match self.earliest()? {
            Some(lane) => self.lanes[lane].1.pop_front()?,
            None => self.heap.pop()?,
        };
        self.len -= 1;
        self.now_us = entry.time_us;
        Some((entry.time_us, entry.event))
    }

    pub fn peek_time_us(&self) -> Option<TimeUs> {
        match self.earliest()? {
            Some(lane) => self.lanes[lane].1.front().map(|entry| entry.time_us),
            None => self.heap.peek().map(|entry| entry.time_us),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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

    /// Pops everything, scheduling `follow_ups[i]` delays after each popped event while
    /// fewer than `limit` events have been scheduled; returns (time, name) in pop order.
    fn run(initial: &[(TimeUs, u64)], follow_ups: &[TimeUs], limit: u64) -> Vec<(TimeUs, u64)> {
        let mut queue = EventQueue::default();
        let mut scheduled = 0;
        for &(time, name) in initial {
            queue.push(time, name);
            scheduled += 1;
        }
        let mut order = Vec::new();
        while let Some((time, name)) = queue.pop() {
            order.push((time, name));
            for &delay in follow_ups {
                if scheduled < limit {
                    queue.push(time + delay, scheduled);
                    scheduled += 1;
                }
            }
        }
        order
    }

    #[test]
    fn lanes_and_heap_give_the_heap_order() {
        // More distinct delays than lanes, repeated and one-off, ties included: the pop order
        // must be the plain (time, scheduling order) order a single heap gives.
        let follow_ups: Vec<TimeUs> = (0..40).map(|i| (i * 7919) % 23).collect();
        let order = run(&[(0, 0), (3, 1), (3, 2)], &follow_ups, 5_000);
        assert_eq!(order.len(), 5_000);
        let mut sorted = order.clone();
        // Names are scheduling order, so (time, name) is the expected total order.
        sorted.sort();
        assert_eq!(order, sorted);
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
