//! The bridge's own threads, where Python runs for calls made on nginx's event loop: each
//! stays attached to the interpreter (one thread state for its life) and lets go of the GIL
//! only while it waits for work.
//!
//! They run under `SCHED_BATCH`: a job handed over does not preempt the event loop, which
//! goes on with the rest of its ready events and hands over their jobs too; the thread then
//! runs them one after the other. Without it, on a busy CPU each request cost two context
//! switches (the loop preempted at every hand-over, the thread asleep after every job).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use pyo3::Python;

/// Work for a bridge thread; it gets the GIL.
pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    stop: bool,
}

#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A job already queued, without waiting.
    fn try_next(&self) -> Option<Job> {
        self.lock().jobs.pop_front()
    }

    /// The next job; `None` once stopped and drained.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.stop {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Hands jobs to the pool from any thread (the event loop included: it never blocks on
/// Python, only on the queue's short lock).
#[derive(Clone)]
pub struct Submitter(Arc<Queue>);

impl Submitter {
    /// Queues `job`. After the pool stopped (the worker is exiting) it is dropped here, and
    /// pyo3 defers the release of any Python object in it to the next thread that attaches.
    pub fn submit(&self, job: Job) {
        let mut state = self.0.lock();
        if state.stop {
            return;
        }
        state.jobs.push_back(job);
        drop(state);
        self.0.ready.notify_one();
    }
}

pub struct Pool {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn start(threads: usize, name: &str) -> std::io::Result<Pool> {
        let queue = Arc::<Queue>::default();
        let mut pool = Pool {
            queue,
            threads: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let queue = Arc::clone(&pool.queue);
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run(&queue));
            match thread {
                Ok(thread) => pool.threads.push(thread),
                Err(error) => {
                    pool.stop();
                    return Err(error);
                }
            }
        }
        Ok(pool)
    }

    pub fn submitter(&self) -> Submitter {
        Submitter(Arc::clone(&self.queue))
    }

    /// Runs what is queued, then ends the threads.
    pub fn stop(&mut self) {
        self.queue.lock().stop = true;
        self.queue.ready.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn run(queue: &Queue) {
    yield_to_event_loop();
    Python::attach(|py| {
        // The GIL is let go only to wait: queued jobs run back to back.
        while let Some(job) = queue.try_next().or_else(|| py.detach(|| queue.next())) {
            // A job that panics has its call failed by its own guard (see `Completion`); the
            // thread serves on.
            let _ = catch_unwind(AssertUnwindSafe(|| job(py)));
        }
    });
}

/// Puts the calling thread under `SCHED_BATCH` (no privilege needed), so that waking it never
/// preempts nginx's event loop. Where that is refused (a seccomp filter), it stays as it was.
fn yield_to_event_loop() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call on the calling thread (pid 0), with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}
