//! Opening app libraries and checking that they speak our ABI, at configuration time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use gateway::abi;
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use parking_lot::Mutex;

/// Why a library cannot serve as an app.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open app library: {source}")]
    Open {
        path: PathBuf,
        source: libloading::Error,
    },
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

/// An opened app library; the descriptor stays valid as long as the library is loaded.
pub struct App {
    descriptor: NonNull<abi::AppDescriptor>,
    name: String,
    path: PathBuf,
    // Declared last so it is dropped last, after everything that points into it.
    _library: Library,
}

// SAFETY: the descriptor is an immutable static of the library (the ABI makes it `Sync`), and
// the library handle itself may be shared and dropped on any thread.
unsafe impl Send for App {}
// SAFETY: as above; nothing in `App` is mutated after loading.
unsafe impl Sync for App {}

impl App {
    pub fn descriptor(&self) -> &abi::AppDescriptor {
        // SAFETY: checked at load and valid while `_library` is loaded, i.e. while `self` lives.
        unsafe { self.descriptor.as_ref() }
    }

    /// The app's name, as its crate declares it.
    pub fn name(&self) -> &str {
        &self.name
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

/// Libraries opened so far, so that several locations naming one library share one load.
static OPENED: Mutex<Option<HashMap<PathBuf, Weak<App>>>> = Mutex::new(None);

/// Opens the app library at `path`, or returns the one already opened there.
pub fn open(path: &Path) -> Result<Arc<App>, LoadError> {
    let mut opened = OPENED.lock();
    let opened = opened.get_or_insert_with(HashMap::new);
    opened.retain(|_, app| app.strong_count() > 0);
    if let Some(app) = opened.get(path).and_then(Weak::upgrade) {
        return Ok(app);
    }
    let app = Arc::new(load(path)?);
    opened.insert(path.to_path_buf(), Arc::downgrade(&app));
    Ok(app)
}

fn load(path: &Path) -> Result<App, LoadError> {
    // RTLD_NOW reports unresolved symbols here, at configuration time, rather than at the first
    // request; RTLD_LOCAL keeps each app's copy of Rust std and the SDK to itself.
    // SAFETY: loading runs the library's initialisers; an app library is trusted code that
    // the operator named in nginx.conf, as with load_module.
    let library =
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|source| {
            LoadError::Open {
                path: path.to_path_buf(),
                source,
            }
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

    // SAFETY: the version check above established that this is a v1 descriptor.
    let name_bytes = unsafe { address.as_ref().name.as_slice() };
    let name = String::from_utf8_lossy(name_bytes).into_owned();
    Ok(App {
        descriptor: address,
        name,
        path: path.to_path_buf(),
        _library: library,
    })
}
