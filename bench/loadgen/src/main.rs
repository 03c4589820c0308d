//! The fixed-rate load generator of scripts/bench's `mixed` workload: each request class (a
//! URL at a rate, over its own keep-alive connections) is sent on a fixed schedule whatever
//! the answers' latency, and its latency recorded on its own, so that the quick requests'
//! tail can be told apart from the slow ones they share a server with.
//!
//! ```text
//! bench-loadgen SECONDS NAME=http://HOST:PORT/PATH@RATE[/CONNECTIONS]...
//! bench-loadgen 10 quick=http://127.0.0.1:18103/hello@3988/16 slow=http://127.0.0.1:18103/sleep?ms=50@12/4
//! ```
//!
//! Prints one line per class: `LOADGEN class=NAME requests=N duration_us=.. p50_us=.. p90_us=..
//! p99_us=.. p999_us=.. max_us=.. errors=.. non2xx=.. late=..`. A request's latency runs from
//! when it was sent to its answer's last byte, or from when it was due if its connection was
//! still busy then (`late`): a slow answer delays the requests queued behind it, and that wait
//! counts (no coordinated omission).

mod class;
mod connection;
mod stats;

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use class::Class;
use connection::Connection;
use stats::Outcome;

/// Time for every connection to be open before the first request is due.
const SETTLE: Duration = Duration::from_millis(300);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench-loadgen SECONDS NAME=http://HOST:PORT/PATH@RATE[/CONNECTIONS]...";
    let Some(seconds) = args
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
    else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let classes: Result<Vec<Class>, _> = args.map(|spec| spec.parse::<Class>()).collect();
    let classes = match classes {
        Ok(classes) if !classes.is_empty() => classes,
        Ok(_) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("bench-loadgen: {error}");
            return ExitCode::from(2);
        }
    };

    let duration = Duration::from_secs_f64(seconds);
    let start = Instant::now() + SETTLE;
    let outcomes: Vec<Outcome> = thread::scope(|scope| {
        let handles: Vec<_> = classes
            .iter()
            .map(|class| {
                let lanes: Vec<_> = (0..class.connections)
                    .map(|lane| scope.spawn(move || drive(class, lane, start, duration)))
                    .collect();
                (class, lanes)
            })
            .collect();
        handles
            .into_iter()
            .map(|(class, lanes)| {
                let mut outcome = Outcome::new(&class.name);
                for lane in lanes {
                    outcome.merge(lane.join().expect("a connection's thread panicked"));
                }
                outcome
            })
            .collect()
    });
    for outcome in &outcomes {
        println!("{}", outcome.summary(start));
    }
    ExitCode::SUCCESS
}

/// One connection of a class: requests `lane`, `lane + connections`, ... of the class's
/// schedule (request `n` due at `start + n / rate`), until `duration` is over.
fn drive(class: &Class, lane: usize, start: Instant, duration: Duration) -> Outcome {
    let mut outcome = Outcome::new(&class.name);
    let mut connection = Connection::open(&class.address).ok();
    let period = Duration::from_secs_f64(class.connections as f64 / class.rate);
    let end = start + duration;
    let mut due = start + Duration::from_secs_f64(lane as f64 / class.rate);
    while due < end {
        let now = Instant::now();
        let sent = if now < due {
            thread::sleep(due - now);
            Instant::now()
        } else {
            outcome.late += 1;
            due
        };
        let answer = match connection.as_mut() {
            Some(open) => open.exchange(&class.request),
            None => Connection::open(&class.address).and_then(|mut fresh| {
                let answer = fresh.exchange(&class.request);
                connection = Some(fresh);
                answer
            }),
        };
        match answer {
            Ok(answer) => {
                outcome.record(sent.elapsed(), answer.status);
                if answer.closed {
                    connection = None;
                }
            }
            Err(error) => {
                if outcome.errors == 0 {
                    eprintln!("bench-loadgen: {} connection {lane}: {error}", class.name);
                }
                outcome.errors += 1;
                connection = None;
            }
        }
        outcome.last = outcome.last.max(Instant::now());
        due += period;
    }
    outcome
}
