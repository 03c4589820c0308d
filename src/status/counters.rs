//! The counters in shared memory: one entry per mount (an app in a location) and per thread
//! pool, summed over all workers with atomics, in a table laid out for `repr(C)` so that a
//! reload with the same layout keeps counting where the old configuration stopped.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub const MAX_MOUNTS: usize = 128;
pub const MAX_POOLS: usize = 16;
pub const NAME_LEN: usize = 64;
/// Upper bounds of the call-latency histogram's buckets, in milliseconds (and +Inf).
pub const LATENCY_BOUNDS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// Marks the table's layout, so a zone kept across a reload is reused only by the same layout.
pub const LAYOUT: u64 = 0x6777_7374_6174_0002;

/// A name in shared memory, written once by the master before any worker reads it.
#[repr(C)]
pub struct Name {
    len: AtomicUsize,
    bytes: [u8; NAME_LEN],
}

impl Name {
    pub fn get(&self) -> &[u8] {
        &self.bytes[..self.len.load(Ordering::Acquire).min(NAME_LEN)]
    }

    pub fn set(&mut self, name: &[u8]) {
        let len = name.len().min(NAME_LEN);
        self.bytes[..len].copy_from_slice(&name[..len]);
        self.len.store(len, Ordering::Release);
    }
}

/// One mount's counters (an app serving a location), shared by every worker. Two locations
/// that mount the same app count apart, so an operator can tell `/api` from `/admin`.
#[repr(C)]
pub struct MountCounters {
    pub app: Name,
    pub location: Name,
    /// Answers by status class (1xx to 5xx), as the app (or the module for it) gave them.
    pub responses: [AtomicU64; 5],
    pub failures: AtomicU64,
    pub panics: AtomicU64,
    pub timeouts: AtomicU64,
    pub queue_full: AtomicU64,
    pub unavailable: AtomicU64,
    pub in_flight: AtomicI64,
    pub latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    pub latency_count: AtomicU64,
    pub latency_sum_us: AtomicU64,
}

/// One thread pool's counters, for the calls of this module.
#[repr(C)]
pub struct PoolCounters {
    pub name: Name,
    pub queued: AtomicI64,
    pub running: AtomicI64,
    pub completed: AtomicU64,
    pub rejected: AtomicU64,
}

/// The zone's table.
#[repr(C)]
pub struct Table {
    pub layout: u64,
    pub mounts: [MountCounters; MAX_MOUNTS],
    pub pools: [PoolCounters; MAX_POOLS],
}

impl MountCounters {
    pub fn call_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A call returned (or its detached thread did): it no longer runs app code.
    pub fn call_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        if let Some(bucket) = LATENCY_BOUNDS_MS.iter().position(|&bound| ms < bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn failed(&self, panicked: bool) {
        let counter = if panicked {
            &self.panics
        } else {
            &self.failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_was_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub fn was_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }
}

impl PoolCounters {
    pub fn posted(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn started(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued call dropped unrun: it timed out before a thread took it.
    pub fn skipped(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// A posted call the full queue refused: it never waited in it.
    pub fn rejected(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a location's counters are, once the zone exists; empty without a zone.
#[derive(Default)]
pub struct CounterSlots {
    pub app: Cell<Option<NonNull<MountCounters>>>,
    pub pool: Cell<Option<NonNull<PoolCounters>>>,
}

impl CounterSlots {
    pub fn app(&self) -> Option<&MountCounters> {
        // SAFETY: set to an entry of the shared table, which lives as long as the zone.
        self.app.get().map(|counters| unsafe { counters.as_ref() })
    }

    pub fn pool(&self) -> Option<&PoolCounters> {
        // SAFETY: as above.
        self.pool.get().map(|counters| unsafe { counters.as_ref() })
    }
}
