//! The counters as JSON and as Prometheus text, both from one table of metrics: each metric is
//! named, explained and read once, and each renderer writes every metric the same way.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use super::counters::{MountCounters, PoolCounters, Table, LATENCY_BOUNDS_MS};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What a mount counted, read once; summed over its mounts, what an app counted.
#[derive(Default, Clone)]
struct Snapshot {
    responses: [u64; 5],
    failures: u64,
    panics: u64,
    timeouts: u64,
    queue_full: u64,
    unavailable: u64,
    in_flight: i64,
    buckets: [u64; LATENCY_BOUNDS_MS.len()],
    count: u64,
    sum_us: u64,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn load_signed(counter: &AtomicI64) -> i64 {
    counter.load(Ordering::Relaxed)
}

impl Snapshot {
    fn of(mount: &MountCounters) -> Snapshot {
        Snapshot {
            responses: mount.responses.each_ref().map(load),
            failures: load(&mount.failures),
            panics: load(&mount.panics),
            timeouts: load(&mount.timeouts),
            queue_full: load(&mount.queue_full),
            unavailable: load(&mount.unavailable),
            in_flight: load_signed(&mount.in_flight),
            buckets: mount.latency_buckets.each_ref().map(load),
            count: load(&mount.latency_count),
            sum_us: load(&mount.latency_sum_us),
        }
    }

    fn add(&mut self, other: &Snapshot) {
        for (sum, value) in self.responses.iter_mut().zip(other.responses) {
            *sum += value;
        }
        for (sum, value) in self.buckets.iter_mut().zip(other.buckets) {
            *sum += value;
        }
        self.failures += other.failures;
        self.panics += other.panics;
        self.timeouts += other.timeouts;
        self.queue_full += other.queue_full;
        self.unavailable += other.unavailable;
        self.in_flight += other.in_flight;
        self.count += other.count;
        self.sum_us += other.sum_us;
    }

    /// The histogram's cumulative counts, as Prometheus has them: calls faster than each bound.
    fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        LATENCY_BOUNDS_MS
            .iter()
            .zip(self.buckets)
            .scan(0, |total, (&bound, count)| {
                *total += count;
                Some((bound, *total))
            })
    }
}

/// A metric of one number per mount (or pool): its Prometheus family, its JSON key, its help
/// text and where its value comes from.
struct Metric<T> {
    family: &'static str,
    json: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&T) -> i64,
}

/// A mount's metrics beside its answers by class and its latency histogram, which have labels
/// and buckets of their own.
const MOUNT_METRICS: [Metric<Snapshot>; 6] = [
    Metric {
        family: "gateway_app_failures_total",
        json: "failures",
        kind: "counter",
        help: "Calls the app failed with an error.",
        value: |s| s.failures as i64,
    },
    Metric {
        family: "gateway_app_panics_total",
        json: "panics",
        kind: "counter",
        help: "Calls in which the app panicked.",
        value: |s| s.panics as i64,
    },
    Metric {
        family: "gateway_app_timeouts_total",
        json: "timeouts",
        kind: "counter",
        help: "Calls past gateway_timeout (answered 504).",
        value: |s| s.timeouts as i64,
    },
    Metric {
        family: "gateway_app_queue_full_total",
        json: "queue_full",
        kind: "counter",
        help: "Calls refused because the thread pool's queue was full (503).",
        value: |s| s.queue_full as i64,
    },
    Metric {
        family: "gateway_app_unavailable_total",
        json: "unavailable",
        kind: "counter",
        help: "Requests refused because the app failed to start (503).",
        value: |s| s.unavailable as i64,
    },
    Metric {
        family: "gateway_app_in_flight",
        json: "in_flight",
        kind: "gauge",
        help: "Calls started and not finished: queued, running app code, or awaited.",
        value: |s| s.in_flight,
    },
];

const RESPONSES: (&str, &str) = (
    "gateway_app_responses_total",
    "Answers by status class, as the app gave them.",
);
const DURATION: (&str, &str) = (
    "gateway_app_call_duration_seconds",
    "Time the app took to answer.",
);

const POOL_METRICS: [Metric<PoolCounters>; 4] = [
    Metric {
        family: "gateway_thread_pool_queued",
        json: "queued",
        kind: "gauge",
        help: "Calls waiting in the pool's queue.",
        value: |p| load_signed(&p.queued),
    },
    Metric {
        family: "gateway_thread_pool_running",
        json: "running",
        kind: "gauge",
        help: "Calls running on the pool's threads.",
        value: |p| load_signed(&p.running),
    },
    Metric {
        family: "gateway_thread_pool_completed_total",
        json: "completed",
        kind: "counter",
        help: "Calls the pool's threads finished.",
        value: |p| load(&p.completed) as i64,
    },
    Metric {
        family: "gateway_thread_pool_rejected_total",
        json: "rejected",
        kind: "counter",
        help: "Calls refused by a full queue.",
        value: |p| load(&p.rejected) as i64,
    },
];

/// Every mount in use: its app, its location and what it counted.
fn mounts(table: &Table) -> Vec<(String, String, Snapshot)> {
    table
        .mounts
        .iter()
        .filter(|mount| !mount.app.get().is_empty())
        .map(|mount| {
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            (
                text(mount.app.get()),
                text(mount.location.get()),
                Snapshot::of(mount),
            )
        })
        .collect()
}

fn pools(table: &Table) -> impl Iterator<Item = (String, &PoolCounters)> {
    table
        .pools
        .iter()
        .filter(|pool| !pool.name.get().is_empty())
        .map(|pool| (String::from_utf8_lossy(pool.name.get()).into_owned(), pool))
}

fn snapshot_json(snapshot: &Snapshot) -> Value {
    let mut object = Map::new();
    object.insert(
        "requests".into(),
        snapshot.responses.iter().sum::<u64>().into(),
    );
    let responses: Map<_, _> = CLASSES
        .iter()
        .zip(snapshot.responses)
        .map(|(class, count)| (class.to_string(), count.into()))
        .collect();
    object.insert("responses".into(), responses.into());
    for metric in &MOUNT_METRICS {
        object.insert(metric.json.into(), (metric.value)(snapshot).into());
    }
    let mut buckets: Vec<Value> = snapshot
        .cumulative()
        .map(|(bound, count)| json!({ "le_ms": bound, "count": count }))
        .collect();
    buckets.push(json!({ "le_ms": "+Inf", "count": snapshot.count }));
    object.insert(
        "latency".into(),
        json!({
            "buckets": buckets,
            "count": snapshot.count,
            "sum_seconds": snapshot.sum_us as f64 / 1e6,
        }),
    );
    object.into()
}

/// `{"apps": {APP: {totals..., "locations": {LOCATION: {counts...}}}}, "thread_pools": {...}}`.
pub fn json(table: &Table) -> String {
    let mut apps: Map<String, Value> = Map::new();
    let mut totals: Vec<(String, Snapshot, Map<String, Value>)> = Vec::new();
    for (app, location, snapshot) in mounts(table) {
        let at = match totals.iter().position(|(name, ..)| *name == app) {
            Some(at) => at,
            None => {
                totals.push((app, Snapshot::default(), Map::new()));
                totals.len() - 1
            }
        };
        let (_, total, locations) = &mut totals[at];
        total.add(&snapshot);
        locations.insert(location, snapshot_json(&snapshot));
    }
    for (app, total, locations) in totals {
        let mut object = snapshot_json(&total);
        object["locations"] = locations.into();
        apps.insert(app, object);
    }
    let pools: Map<_, _> = pools(table)
        .map(|(name, pool)| {
            let counts: Map<_, _> = POOL_METRICS
                .iter()
                .map(|metric| (metric.json.to_string(), (metric.value)(pool).into()))
                .collect();
            (name, counts.into())
        })
        .collect();
    let mut text = json!({ "apps": apps, "thread_pools": pools }).to_string();
    text.push('\n');
    text
}

/// A label value, escaped as the exposition format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Prometheus text exposition format 0.0.4; every mount's series labelled by app and location
/// (`sum by (app)` gives an app's totals).
pub fn prometheus(table: &Table) -> String {
    let mounts: Vec<(String, Snapshot)> = mounts(table)
        .into_iter()
        .map(|(app, location, snapshot)| {
            let labels = format!("app=\"{}\",location=\"{}\"", label(&app), label(&location));
            (labels, snapshot)
        })
        .collect();
    let mut out = String::new();
    let (name, help) = RESPONSES;
    family(&mut out, name, "counter", help);
    for (labels, snapshot) in &mounts {
        for (class, count) in CLASSES.iter().zip(snapshot.responses) {
            let _ = writeln!(out, "{name}{{{labels},class=\"{class}\"}} {count}");
        }
    }
    for metric in &MOUNT_METRICS {
        family(&mut out, metric.family, metric.kind, metric.help);
        for (labels, snapshot) in &mounts {
            let _ = writeln!(
                out,
                "{}{{{labels}}} {}",
                metric.family,
                (metric.value)(snapshot)
            );
        }
    }
    let (name, help) = DURATION;
    family(&mut out, name, "histogram", help);
    for (labels, snapshot) in &mounts {
        for (bound, count) in snapshot.cumulative() {
            let le = bound as f64 / 1000.0;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
        }
        let count = snapshot.count;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = snapshot.sum_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
    for metric in &POOL_METRICS {
        family(&mut out, metric.family, metric.kind, metric.help);
        for (name, pool) in pools(table) {
            let _ = writeln!(
                out,
                "{}{{pool=\"{}\"}} {}",
                metric.family,
                label(&name),
                (metric.value)(pool)
            );
        }
    }
    out
}
