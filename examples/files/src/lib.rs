//! Uploads and static files: a `multipart/form-data` form whose files are saved under their
//! SHA-256 digest and served back by nginx, and a directory of static files.
//!
//! ```nginx
//! location /files/ {
//!     client_max_body_size 20m;
//!     gateway_app /path/to/libfiles.so;
//!     gateway_app_param static /srv/site/static;    # served at /files/static/...
//!     gateway_app_param uploads /srv/site/uploads;  # created if missing; /files/uploads/...
//!     gateway_app_param max_file_size 10485760;     # optional, bytes per file (8 MiB)
//! }
//! ```
//!
//! `POST /files/upload` with a form answers a line per field: `name = value` for a value,
//! `name file-name content-type size sha256 /uploads/<sha256>.<ext>` for a file, whose copy is
//! then at that path. `GET /files/static/css/site.css` sends a static file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gateway::multipart::{Field, Multipart, MultipartLimits};
use gateway::{get, post, Config, ConfigError, Error, Request, Router, StaticFiles};
use sha2::{Digest, Sha256};

/// The app's state: where uploads go, and how large they may be.
pub struct Uploads {
    dir: PathBuf,
    limits: MultipartLimits,
}

/// Builds the app from the location's settings: `static` and `uploads` (required), and
/// `max_file_size` (a whole form stays within [`MultipartLimits`]' default of 32 MiB).
pub fn app(config: &Config) -> Result<Router<Uploads>, ConfigError> {
    let static_dir = config.resolve_path(config.require("static")?);
    let uploads_dir = config.resolve_path(config.require("uploads")?);
    std::fs::create_dir_all(&uploads_dir).map_err(|error| ConfigError::Invalid {
        name: "uploads".into(),
        value: uploads_dir.display().to_string(),
        reason: error.to_string(),
    })?;
    let mut limits = MultipartLimits::default();
    if let Some(bytes) = config.parse::<u64>("max_file_size")? {
        limits = limits.field(bytes);
    }
    let uploads = Uploads {
        dir: uploads_dir.clone(),
        limits,
    };
    Ok(Router::with_state(uploads)
        .route("/upload", post(upload))
        .route("/static/{*path}", get(StaticFiles::new(static_dir)))
        .route("/uploads/{*path}", get(StaticFiles::new(uploads_dir))))
}

fn upload(request: &Request, uploads: &Uploads) -> Result<String, Error> {
    let mut form = Multipart::from_request(request, uploads.limits)?;
    let mut answer = String::new();
    while let Some(field) = form.next_field()? {
        let name = field.name().unwrap_or("").to_string();
        let line = match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let content_type = field.content_type().unwrap_or("-").to_string();
                let (size, digest, saved) = save(field, &file_name, &uploads.dir)?;
                format!("{name} {file_name} {content_type} {size} {digest} /uploads/{saved}")
            }
            None => format!("{name} = {}", field.text()?),
        };
        answer.push_str(&line);
        answer.push('\n');
    }
    Ok(answer)
}

/// Names temporary files apart within a worker; the pid keeps workers apart.
static SAVING: AtomicU64 = AtomicU64::new(0);

/// Saves a file under a temporary name while hashing it, then renames it to its digest and
/// the client's extension (when it is a plain one), so the same content is kept once.
fn save(field: Field, file_name: &str, dir: &Path) -> Result<(u64, String, String), Error> {
    let temporary = dir.join(format!(
        ".upload-{}-{}",
        std::process::id(),
        SAVING.fetch_add(1, Ordering::Relaxed)
    ));
    let mut hashing = HashingFile {
        file: std::fs::File::create(&temporary).map_err(Error::internal)?,
        hasher: Sha256::new(),
    };
    let mut field = field;
    let size = match field.copy_to(&mut hashing) {
        Ok(size) => size,
        Err(error) => {
            // The upload's error is the one to answer; a failed cleanup changes nothing.
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
    };
    let digest: String = hashing
        .hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let saved = match extension(file_name) {
        Some(extension) => format!("{digest}.{extension}"),
        None => digest.clone(),
    };
    std::fs::rename(&temporary, dir.join(&saved)).map_err(Error::internal)?;
    Ok((size, digest, saved))
}

/// The extension of the client's file name if it is short and alphanumeric: never a path.
fn extension(file_name: &str) -> Option<&str> {
    let (_, extension) = file_name.rsplit_once('.')?;
    let plain = !extension.is_empty()
        && extension.len() <= 8
        && extension.bytes().all(|byte| byte.is_ascii_alphanumeric());
    plain.then_some(extension)
}

struct HashingFile {
    file: std::fs::File,
    hasher: Sha256,
}

impl Write for HashingFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

gateway::app!(init = app);
