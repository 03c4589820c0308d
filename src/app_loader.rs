//! Opening app libraries and checking that they speak our ABI, at configuration time.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use gateway_abi as abi;
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use parking_lot::Mutex;

use crate::call::CallState;

/// Why a library cannot serve as an app.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open app library \"{path}\": {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("\"{path}\" is not a gateway app: it exports no \"{symbol}\" symbol (apps export it with gateway::app!)")]
    MissingEntry { path: PathBuf, symbol: &'static str },
    #[error("\"{path}\" is not a gateway app: its \"{symbol}\" symbol is not an app descriptor")]
    BadMagic { path: PathBuf, symbol: &'static str },
    #[error("app library \"{path}\" was built for gateway ABI {found}, this module speaks ABI {expected}: rebuild the app against a matching gateway SDK")]
    AbiVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("app library \"{path}\" needs gateway ABI {version}.{found}, this module provides {version}.{provided}: upgrade the module or build the app with an older SDK")]
    AbiMinor {
        path: PathBuf,
        version: u32,
        found: u32,
        provided: u32,
    },
}

/// An opened app library; the descriptor's pointers stay valid as long as the library is
/// loaded.
pub struct App {
    /// A copy of the library's descriptor, in this module's layout: the fields appended after
    /// the app's minor are empty.
    descriptor: abi::AppDescriptor,
    name: Arc<str>,
    /// The handle the app logs through outside requests ([`abi::Setup::log_handle`]).
    log_handle: Arc<CallState>,
    path: PathBuf,
    /// Options only so that `Drop` can end them in order: the library, then its file.
    library: Option<Library>,
    private_copy: Option<PrivateCopy>,
}

// SAFETY: the descriptor's copy points only to immutable statics and functions of the library
// (the ABI makes it `Sync`), and the library handle itself may be shared and dropped on any
// thread.
unsafe impl Send for App {}
// SAFETY: as above; nothing in `App` is mutated after loading.
unsafe impl Sync for App {}

impl App {
    pub fn descriptor(&self) -> &abi::AppDescriptor {
        &self.descriptor
    }

    /// The app's name, as its crate declares it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's name, to keep with each of its calls.
    pub fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// The app's handle for logging outside requests; valid as long as the app is loaded.
    pub fn log_handle(&self) -> *mut abi::Call {
        self.log_handle.as_handle()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Version of the SDK the app was built with.
    pub fn sdk_version(&self) -> std::borrow::Cow<'_, str> {
        // SAFETY: the descriptor's strings are statics of the loaded library.
        String::from_utf8_lossy(unsafe { self.descriptor().sdk_version.as_slice() })
    }
}

/// What identifies the file behind a path: a rebuilt app has a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
}

impl FileIdentity {
    fn of(file: &File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        Ok(FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// Libraries opened so far, so that several locations naming one library share one load, and
/// a reload with the library unchanged reuses it.
static OPENED: Mutex<Option<OpenedApps>> = Mutex::new(None);

type OpenedApps = HashMap<PathBuf, (FileIdentity, Weak<App>)>;

/// Opens the app library at `path`, or returns the one already opened from the same file.
pub fn open(path: &Path) -> Result<Arc<App>, LoadError> {
    let open_error = |reason: String| LoadError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|error| open_error(error.to_string()))?;
    let identity = FileIdentity::of(&file).map_err(|error| open_error(error.to_string()))?;

    let mut opened = OPENED.lock();
    let opened = opened.get_or_insert_with(HashMap::new);
    opened.retain(|_, (_, app)| app.strong_count() > 0);
    if let Some((known, app)) = opened.get(path) {
        if let Some(app) = app.upgrade().filter(|_| *known == identity) {
            return Ok(app);
        }
    }
    let app = Arc::new(load(path, file)?);
    opened.insert(path.to_path_buf(), (identity, Arc::downgrade(&app)));
    Ok(app)
}

/// An anonymous in-memory copy of a library file, loaded instead of the file itself.
///
/// The dynamic loader hands back an already-loaded library for a name it knows, so after an
/// app is rebuilt at the same path, `nginx -s reload` would keep serving the old code; a
/// fresh copy is a new object every time. Being anonymous memory, it also loads where the
/// file's filesystem (or /tmp) is mounted noexec.
struct PrivateCopy {
    fd: OwnedFd,
}

impl PrivateCopy {
    fn of(mut file: File) -> std::io::Result<Self> {
        // SAFETY: a valid name and flags; the result is checked below.
        let fd = unsafe { libc::memfd_create(c"ngx-gateway-app".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        std::io::copy(&mut file, &mut File::from(fd.try_clone()?))?;
        Ok(PrivateCopy { fd })
    }

    /// The name the loader opens the copy by.
    fn name(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

fn load(path: &Path, file: File) -> Result<App, LoadError> {
    let open_error = |reason: String| LoadError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let copy =
        PrivateCopy::of(file).map_err(|error| open_error(format!("copying it failed: {error}")))?;
    let name = copy.name();
    // RTLD_NOW reports unresolved symbols here, at configuration time, rather than at the first
    // request; RTLD_LOCAL keeps each app's copy of Rust std and the SDK to itself.
    // SAFETY: loading runs the library's initialisers; an app library is trusted code that
    // the operator named in nginx.conf, as with load_module.
    let library =
        unsafe { Library::open(Some(&name), RTLD_NOW | RTLD_LOCAL) }.map_err(|error| {
            // The loader's message names the copy; the operator knows the library by its path.
            let message = error.to_string();
            let reason = message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(&message)
                .to_string();
            open_error(reason)
        })?;

    // SAFETY: only the address is taken here; it is dereferenced after the checks below.
    let address = unsafe { library.get::<*const abi::AppDescriptor>(abi::ENTRY_SYMBOL.as_bytes()) }
        .map(|symbol| symbol.into_raw())
        .ok()
        .and_then(|raw| NonNull::new(raw.cast::<abi::AppDescriptor>()))
        .ok_or(LoadError::MissingEntry {
            path: path.to_path_buf(),
            symbol: abi::ENTRY_SYMBOL,
        })?;
    // Read the fixed head of the descriptor first; the rest is only read once its version says
    // the layout is ours.
    // SAFETY: every version of the ABI starts the descriptor with the magic then the version.
    let (magic, version, minor) = unsafe {
        let head = address.as_ptr();
        (
            std::ptr::addr_of!((*head).magic).read_unaligned(),
            std::ptr::addr_of!((*head).abi_version).read_unaligned(),
            std::ptr::addr_of!((*head).abi_minor).read_unaligned(),
        )
    };
    if magic != abi::MAGIC {
        return Err(LoadError::BadMagic {
            path: path.to_path_buf(),
            symbol: abi::ENTRY_SYMBOL,
        });
    }
    if version != abi::ABI_VERSION {
        return Err(LoadError::AbiVersion {
            path: path.to_path_buf(),
            found: version,
            expected: abi::ABI_VERSION,
        });
    }
    if minor > abi::ABI_MINOR {
        return Err(LoadError::AbiMinor {
            path: path.to_path_buf(),
            version,
            found: minor,
            provided: abi::ABI_MINOR,
        });
    }

    // Copied field by field: an older minor's descriptor is shorter than ours, and the fields
    // it lacks must not be read.
    // SAFETY: the version check above established a v1 descriptor of at least `minor`.
    let descriptor = unsafe {
        let head = address.as_ptr();
        abi::AppDescriptor {
            magic,
            abi_version: version,
            abi_minor: minor,
            name: std::ptr::addr_of!((*head).name).read(),
            sdk_version: std::ptr::addr_of!((*head).sdk_version).read(),
            init: std::ptr::addr_of!((*head).init).read(),
            call: std::ptr::addr_of!((*head).call).read(),
            shutdown: std::ptr::addr_of!((*head).shutdown).read(),
            check: if minor >= 1 {
                std::ptr::addr_of!((*head).check).read()
            } else {
                None
            },
            cancel: if minor >= 1 {
                std::ptr::addr_of!((*head).cancel).read()
            } else {
                None
            },
        }
    };
    // SAFETY: the name is a static of the library, loaded as long as the `App`.
    let name: Arc<str> = String::from_utf8_lossy(unsafe { descriptor.name.as_slice() }).into();
    Ok(App {
        descriptor,
        log_handle: CallState::log_handle(Arc::clone(&name)),
        name,
        path: path.to_path_buf(),
        library: Some(library),
        private_copy: Some(copy),
    })
}

impl Drop for App {
    fn drop(&mut self) {
        drop(self.library.take());
        let Some(copy) = self.private_copy.take() else {
            return;
        };
        // A library that stays loaded after its last close (Rust's thread-local destructors
        // pin it) keeps its name in the loader's list: its descriptor must stay open, or a
        // later copy given the same number would be mistaken for it.
        let name = copy.name();
        // SAFETY: RTLD_NOLOAD only looks the name up; it loads nothing.
        let still_loaded = unsafe { Library::open(Some(&name), RTLD_NOW | libc::RTLD_NOLOAD) };
        if let Ok(still_loaded) = still_loaded {
            drop(still_loaded);
            std::mem::forget(copy);
        }
    }
}
