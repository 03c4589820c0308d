//! gateway::database on SQLite files in temporary directories and, when TEST_POSTGRES_URL
//! (or TEST_NGINX_POSTGRES_URL, as scripts/test sets it) names one, a real PostgreSQL.
#![cfg(feature = "database")]

use std::sync::Arc;

use gateway::database::{Backend, Database, DatabaseError, Transaction};
use gateway::testing::{CapturedLog, TestClient};
use gateway::{get, Config, Error, LogLevel, Request, RunsOn, StatusCode};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    id: i64,
    name: String,
    price: Option<f64>,
    data: Option<Vec<u8>>,
}

/// The schema every test uses, in a table of its own so that tests sharing a PostgreSQL
/// database do not meet.
fn schema(table: &str) -> impl Fn(&mut Transaction<'_>) -> Result<(), DatabaseError> {
    let table = table.to_string();
    move |schema| {
        let key = schema.backend().serial_primary_key();
        let data = match schema.backend() {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        schema.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id {key}, name TEXT NOT NULL UNIQUE, \
             price DOUBLE PRECISION, data {data})"
        ))
    }
}

/// A test's table name, unique across test processes sharing one PostgreSQL.
fn table(name: &str) -> String {
    format!("{name}_{}", std::process::id())
}

fn postgres_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("TEST_NGINX_POSTGRES_URL"))
        .ok()
        .filter(|url| !url.is_empty())
}

/// A test run on SQLite, then on PostgreSQL if there is one.
fn on_each_backend(test: impl Fn(&Config)) {
    let dir = tempfile::tempdir().unwrap();
    test(&Config::default().with_prefix(dir.path()));
    match postgres_url() {
        Some(url) => test(&Config::from_pairs([("database", url)])),
        None => eprintln!("PostgreSQL half skipped: set TEST_POSTGRES_URL"),
    }
}

#[test]
fn values_go_in_and_come_back_typed() {
    on_each_backend(|config| {
        let table = table("typed");
        let db = Database::open(config, "test", schema(&table)).unwrap();
        let insert = format!("INSERT INTO {table} (name, price, data) VALUES ($1, $2, $3)");
        assert_eq!(
            db.execute(&insert, &[&"apple", &1.5, &vec![0u8, 255]])
                .unwrap(),
            1
        );
        db.execute(&insert, &[&"pear", &None::<f64>, &None::<Vec<u8>>])
            .unwrap();
        let items: Vec<Item> = db
            .query(
                &format!("SELECT id, name, price, data FROM {table} ORDER BY id"),
                &[],
            )
            .unwrap();
        assert_eq!(
            items,
            [
                Item {
                    id: 1,
                    name: "apple".into(),
                    price: Some(1.5),
                    data: Some(vec![0, 255])
                },
                Item {
                    id: 2,
                    name: "pear".into(),
                    price: None,
                    data: None
                },
            ],
            "{:?}",
            db.backend()
        );
        // Placeholders by number, in any order, one used twice; an i32 binds to a bigint.
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let count: Option<Count> = db
            .query_opt(
                &format!(
                    "SELECT count(*) AS n FROM {table} WHERE name = $2 OR (id = $1 AND id = $1)"
                ),
                &[&2i32, &"apple"],
            )
            .unwrap();
        assert_eq!(count.map(|count| count.n), Some(2));
        db.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    });
}

#[test]
fn statement_mistakes_are_typed_errors() {
    on_each_backend(|config| {
        let table = table("mistakes");
        let db = Database::open(config, "test", schema(&table)).unwrap();
        let insert = format!("INSERT INTO {table} (name) VALUES ($1)");
        db.execute(&insert, &[&"once"]).unwrap();
        let twice = db.execute(&insert, &[&"once"]).unwrap_err();
        assert!(matches!(twice, DatabaseError::Constraint(_)), "{twice}");
        let missing = db.execute(&insert, &[]).unwrap_err();
        assert!(
            matches!(
                missing,
                DatabaseError::Parameters(_) | DatabaseError::Query(_)
            ),
            "{missing}"
        );
        let unknown = db
            .query::<Item>("SELECT * FROM no_such_table", &[])
            .unwrap_err();
        assert!(matches!(unknown, DatabaseError::Query(_)), "{unknown}");
        let misfit = db
            .query::<Item>(&format!("SELECT name FROM {table}"), &[])
            .unwrap_err();
        assert!(matches!(misfit, DatabaseError::Row(_)), "{misfit}");
        // A 500 for the client, with the reason for the log.
        assert_eq!(
            Error::from(misfit).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        db.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    });
}

#[test]
fn sqlite_wants_numbered_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        &Config::default().with_prefix(dir.path()),
        "test",
        schema("t"),
    )
    .unwrap();
    let error = db
        .execute("INSERT INTO t (name) VALUES (?)", &[&"x"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "statement parameters: placeholder ? is not one of $1 to $1"
    );
}

#[test]
fn a_transaction_commits_on_ok_and_rolls_back_on_err() {
    on_each_backend(|config| {
        let table = table("transactions");
        let db = Database::open(config, "test", schema(&table)).unwrap();
        let insert = format!("INSERT INTO {table} (name) VALUES ($1)");
        let count = || {
            db.query::<serde_json::Value>(&format!("SELECT name FROM {table}"), &[])
                .unwrap()
                .len()
        };
        db.transaction(|tx| {
            tx.execute(&insert, &[&"a"])?;
            tx.execute(&insert, &[&"b"])
        })
        .unwrap();
        assert_eq!(count(), 2);
        let failed: Result<(), Error> = db.transaction(|tx| {
            tx.execute(&insert, &[&"c"])?;
            Err(Error::status(StatusCode::CONFLICT, "changed my mind"))
        });
        assert!(failed.is_err());
        assert_eq!(
            count(),
            2,
            "the insert of the failed transaction is rolled back"
        );
        db.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    });
}

#[test]
fn every_instance_on_one_database_sees_every_write() {
    on_each_backend(|config| {
        let table = table("shared");
        // Two instances, as two nginx workers have, each with its pool, writing at once.
        let config = config
            .clone()
            .with_runs_on(RunsOn::ThreadPool { threads: 4 });
        let instances: Vec<Arc<Database>> = (0..2)
            .map(|_| Arc::new(Database::open(&config, "test", schema(&table)).unwrap()))
            .collect();
        let insert = format!("INSERT INTO {table} (name) VALUES ($1)");
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let db = instances[thread % 2].clone();
                let insert = &insert;
                scope.spawn(move || {
                    for n in 0..25 {
                        db.execute(insert, &[&format!("{thread}-{n}")]).unwrap();
                    }
                });
            }
        });
        for db in &instances {
            let names: Vec<serde_json::Value> =
                db.query(&format!("SELECT name FROM {table}"), &[]).unwrap();
            assert_eq!(names.len(), 200, "{:?}", db.backend());
        }
        instances[0]
            .execute_batch(&format!("DROP TABLE {table}"))
            .unwrap();
    });
}

#[test]
fn the_schema_is_set_up_once_for_all_instances() {
    on_each_backend(|config| {
        let table = table("seeded");
        let seed = {
            let table = table.clone();
            move |schema: &mut Transaction<'_>| {
                schema.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} (name TEXT NOT NULL)"
                ))?;
                let rows: Vec<serde_json::Value> =
                    schema.query(&format!("SELECT name FROM {table}"), &[])?;
                if rows.is_empty() {
                    schema.execute(
                        &format!("INSERT INTO {table} (name) VALUES ($1)"),
                        &[&"seed"],
                    )?;
                }
                Ok(())
            }
        };
        let seed = Arc::new(seed);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let seed = seed.clone();
                scope.spawn(move || {
                    Database::open(config, "test", move |schema| seed(schema)).unwrap()
                });
            }
        });
        let db = Database::open(config, "test", |_| Ok(())).unwrap();
        let rows: Vec<serde_json::Value> =
            db.query(&format!("SELECT name FROM {table}"), &[]).unwrap();
        assert_eq!(rows.len(), 1, "seeded once: {rows:?}");
        db.execute_batch(&format!("DROP TABLE {table}")).unwrap();
    });
}

#[test]
fn the_default_database_is_a_file_under_nginx_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().with_prefix(dir.path());
    let db = Database::open(&config, "visits", schema("t")).unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    assert!(dir.path().join("visits.sqlite3").is_file());
    // A relative path is resolved against the prefix, as nginx's own.
    let named = Config::from_pairs([("database", "data.db")]).with_prefix(dir.path());
    let db = Database::open(&named, "visits", schema("t")).unwrap();
    db.execute("INSERT INTO t (name) VALUES ($1)", &[&"x"])
        .unwrap();
    assert!(dir.path().join("data.db").is_file());
    assert!(dir.path().join("data.db-wal").exists(), "WAL mode");
}

#[test]
fn unusable_settings_are_refused_clearly() {
    let missing = Database::open(&Config::default(), "visits", schema("t")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "missing setting: add `gateway_app_param database ...;` to the location"
    );
    let bad = Config::from_pairs([("database", "postgres://user:secret@host:notaport/db")]);
    let message = gateway::database::check(&bad).unwrap_err().to_string();
    assert!(
        message.starts_with("setting database = \"postgres://...\" is invalid: ")
            && !message.contains("secret"),
        "{message}"
    );
    let nowhere = Config::from_pairs([("database", "/no/such/directory/x.sqlite3")]);
    let error = Database::open(&nowhere, "x", schema("t")).unwrap_err();
    assert!(matches!(error, DatabaseError::Open { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "SQLite database /no/such/directory/x.sqlite3 cannot be opened: unable to open database \
         file: /no/such/directory/x.sqlite3"
    );
    let zero = Config::from_pairs([("database", "x.db"), ("database_connections", "0")]);
    assert!(gateway::database::check(&zero).is_err());
}

#[test]
fn on_the_event_loop_the_app_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let log = CapturedLog::new();
    let config = Config::default()
        .with_prefix(dir.path())
        .with_logger(log.logger());
    Database::open(&config, "test", schema("t")).unwrap();
    let lines = log.lines();
    assert_eq!(lines[0].level, LogLevel::Warn);
    assert!(
        lines[0].message.contains("gateway_thread_pool"),
        "{lines:?}"
    );
    let pooled = Config::default()
        .with_prefix(dir.path())
        .with_runs_on(RunsOn::ThreadPool { threads: 2 })
        .with_logger(log.logger());
    Database::open(&pooled, "test", schema("t")).unwrap();
    let last = log.lines().pop().unwrap();
    assert_eq!(
        (last.level, last.message),
        (
            LogLevel::Info,
            format!(
                "SQLite database {}: up to 2 connections in this worker",
                dir.path().join("test.sqlite3").display()
            )
        )
    );
}

#[test]
fn a_database_that_cannot_be_reached_answers_503_with_the_reason_logged() {
    // Port 1 on the loopback: nothing listens, the connection is refused at once.
    let config = Config::from_pairs([("database", "postgres://gateway@127.0.0.1:1/gateway")]);
    let log = CapturedLog::new();
    let db = Database::open(
        &config.clone().with_logger(log.logger()),
        "test",
        schema("t"),
    )
    .expect("an unreachable server is no reason not to start");
    assert!(
        log.lines()
            .iter()
            .any(|line| line.level == LogLevel::Warn && line.message.contains("answers 503")),
        "{:?}",
        log.lines()
    );
    let client = TestClient::new(gateway::Router::with_state(db).route(
        "/",
        get(
            |_: &Request, db: &Database| -> Result<&'static str, Error> {
                db.execute("SELECT 1", &[])?;
                Ok("ok")
            },
        ),
    ));
    let response = client.get("/").send();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.text(),
        "The service is unavailable; try again later.\n"
    );
    assert_eq!(response.log.len(), 1, "{:?}", response.log);
    let line = &response.log[0];
    assert_eq!(line.level, LogLevel::Error);
    assert!(
        line.message.starts_with(
            "PostgreSQL database gateway at 127.0.0.1:1 is unavailable: timed out waiting for connection: error connecting to server: "
        ) && line.message.contains("refused"),
        "{}",
        line.message
    );
}

/// The child half of the next test: opens the database in `GATEWAY_TEST_RACE_DIR` as a new
/// worker would, at the wall-clock millisecond `GATEWAY_TEST_RACE_AT`, and says whether its
/// init saw the file busy.
#[test]
fn worker_opening_the_shared_file() {
    let (Some(dir), Some(at)) = (
        std::env::var_os("GATEWAY_TEST_RACE_DIR"),
        std::env::var("GATEWAY_TEST_RACE_AT").ok(),
    ) else {
        return;
    };
    let at: u128 = at.parse().expect("GATEWAY_TEST_RACE_AT is milliseconds");
    let log = CapturedLog::new();
    let config = Config::default()
        .with_prefix(std::path::PathBuf::from(dir))
        .with_runs_on(RunsOn::ThreadPool { threads: 1 })
        .with_logger(log.logger());
    while unix_millis() < at {
        std::hint::spin_loop();
    }
    Database::open(&config, "race", schema("t")).expect("init");
    for line in log.lines() {
        if line.level == LogLevel::Warn {
            println!("INIT WARNED: {}", line.message);
        }
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// nginx's workers start together and each opens the app's SQLite file: when it is new,
/// they race to switch it to WAL, and none may come up unable to serve.
#[test]
fn workers_opening_a_new_file_together_all_come_up() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let at = unix_millis() + 100;
        let workers: Vec<_> = (0..8)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "worker_opening_the_shared_file", "--nocapture"])
                    .env("GATEWAY_TEST_RACE_DIR", dir.path())
                    .env("GATEWAY_TEST_RACE_AT", at.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for worker in workers {
            let output = worker.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "a worker's init failed:\n{text}");
            assert!(!text.contains("INIT WARNED"), "{text}");
        }
    }
}
