//! Strict modes for app libraries (`gateway_strict_modes`, on by default): an app is machine
//! code that runs in every worker (and its loader's initialisers in the master, at `nginx -t`),
//! so when the master runs as root, a library that someone other than root or nginx's worker
//! user could have replaced is refused before it is loaded, the way sshd's StrictModes judges
//! key files.
//!
//! The library's canonical path (symlinks resolved) and every directory from it up to `/` are
//! judged: each must be owned by root or by the worker user, and writable by neither its group
//! nor others. A directory owned by root with the sticky bit (like `/tmp`) may be writable by
//! all: there nobody can rename or remove an entry they do not own, and the entries below it
//! are judged on their own.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ngx::core::{CoreModuleMainConf, NgxCoreModule};
use ngx::ffi::{ngx_conf_t, ngx_uid_t, NGX_USER};

/// Write permission for the group and for others.
const GROUP_WRITE: u32 = 0o020;
const OTHERS_WRITE: u32 = 0o002;
/// The sticky bit: in such a directory only an entry's owner (or root) may rename or remove it.
const STICKY: u32 = 0o1000;
/// What nginx's core module leaves in `user` until it applies its default (NGX_CONF_UNSET_UINT,
/// as uid_t).
const USER_UNSET: ngx_uid_t = ngx_uid_t::MAX;

/// Why an app library is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("cannot resolve its path: {0}")]
    Resolve(io::Error),
    #[error("cannot read the owner and mode of {kind} \"{}\": {error}", .path.display())]
    Stat {
        kind: Kind,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{kind} \"{}\" is owned by uid {owner}, {}", .path.display(), Allowed(*.worker))]
    Owner {
        kind: Kind,
        path: PathBuf,
        owner: u32,
        worker: Option<ngx_uid_t>,
    },
    #[error("{kind} \"{}\" is writable by {writers}", .path.display())]
    Writable {
        kind: Kind,
        path: PathBuf,
        writers: Writers,
    },
}

/// The library itself, or a directory above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::File => "file",
            Kind::Directory => "directory",
        })
    }
}

/// Who, besides the owner, may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    Group,
    Others,
    GroupAndOthers,
}

impl fmt::Display for Writers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Writers::Group => "group",
            Writers::Others => "others",
            Writers::GroupAndOthers => "group and others",
        })
    }
}

/// The owners allowed, for the message.
struct Allowed(Option<ngx_uid_t>);

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(0) => f.write_str("not root, which is also nginx's worker user"),
            Some(uid) => write!(f, "neither root nor nginx's worker user (uid {uid})"),
            None => f.write_str("not root"),
        }
    }
}

/// Judges `library` before nginx loads it (loading runs its code, as root in the master), if
/// the master runs as root and `gateway_strict_modes` is on (`strict`: the setting as the http
/// block has it so far).
pub fn judge_before_loading(
    cf: &ngx_conf_t,
    strict: bool,
    library: &Path,
) -> Result<(), Untrusted> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if !strict || unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    judge(library, worker_uid(cf))
}

/// The uid nginx's workers will run as: the `user` directive's (given before the http block, as
/// usual), else the default nginx applies when the master is root (its build's user,
/// "nobody"), which the core module fills in only once the whole file is read. None if
/// that user does not exist (nginx itself then refuses to start).
fn worker_uid(cf: &ngx_conf_t) -> Option<ngx_uid_t> {
    let core = NgxCoreModule::main_conf(cf)?;
    if core.user != USER_UNSET {
        return Some(core.user);
    }
    // SAFETY: NGX_USER is a NUL-terminated name; the master is single-threaded while it reads
    // its configuration, so nothing else uses getpwnam's static entry meanwhile.
    let entry = unsafe { libc::getpwnam(NGX_USER.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: a non-null result points at a valid passwd entry until the next getpw* call.
    Some(unsafe { (*entry).pw_uid })
}

/// Judges the library at `library` and every directory above its canonical path.
pub fn judge(library: &Path, worker: Option<ngx_uid_t>) -> Result<(), Untrusted> {
    let canonical = match fs::canonicalize(library) {
        Ok(canonical) => canonical,
        // Nothing there to load: the loader says so, as for any missing library.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(Untrusted::Resolve(error)),
    };
    for (depth, path) in canonical.ancestors().enumerate() {
        let kind = if depth == 0 {
            Kind::File
        } else {
            Kind::Directory
        };
        let metadata = fs::metadata(path).map_err(|error| Untrusted::Stat {
            kind,
            path: path.to_path_buf(),
            error,
        })?;
        judge_entry(kind, path, metadata.uid(), metadata.mode(), worker)?;
    }
    Ok(())
}

/// One path's owner and mode: owned by root or the worker user, and writable by neither group
/// nor others unless it is a root-owned sticky directory.
fn judge_entry(
    kind: Kind,
    path: &Path,
    owner: u32,
    mode: u32,
    worker: Option<ngx_uid_t>,
) -> Result<(), Untrusted> {
    if owner != 0 && Some(owner) != worker {
        return Err(Untrusted::Owner {
            kind,
            path: path.to_path_buf(),
            owner,
            worker,
        });
    }
    if kind == Kind::Directory && owner == 0 && mode & STICKY != 0 {
        return Ok(());
    }
    let writers = match (mode & GROUP_WRITE != 0, mode & OTHERS_WRITE != 0) {
        (false, false) => return Ok(()),
        (true, false) => Writers::Group,
        (false, true) => Writers::Others,
        (true, true) => Writers::GroupAndOthers,
    };
    Err(Untrusted::Writable {
        kind,
        path: path.to_path_buf(),
        writers,
    })
}
