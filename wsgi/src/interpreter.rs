//! The worker's one Python interpreter: started by the first location's init (never in the
//! master), shared by every location of the worker, and the WSGI apps imported into it.

use std::ffi::{c_void, CStr, CString};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use thiserror::Error;

use crate::params::Params;
use crate::python_error_text;

/// The Python the bridge was built against (see build.rs), started when no `home` is given.
const BUILT_PYTHON: &str = match option_env!("GATEWAY_WSGI_PYTHON") {
    Some(python) => python,
    None => "python3",
};

/// The `home` the worker's interpreter was started with, once it is.
static STARTED: Mutex<Option<Option<PathBuf>>> = Mutex::new(None);

/// Why the interpreter could not be started.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(
        "this worker's Python was started with home {started}, this location asks for home \
         {wanted}: every location of a worker shares one interpreter, so all must name the same home"
    )]
    OtherHome { started: String, wanted: String },
    #[error("cannot make libpython's symbols global, so C extensions could not load: {0}")]
    Global(String),
    #[error("cannot start Python: {0}")]
    Init(String),
}

/// Why an app could not be loaded into the interpreter.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot import the WSGI app {target}:\n{traceback}")]
    Import { target: String, traceback: String },
    #[error("the WSGI app {0} is not callable")]
    NotCallable(String),
}

fn describe_home(home: Option<&Path>) -> String {
    home.map_or_else(|| "(none)".into(), |home| format!("\"{}\"", home.display()))
}

/// Starts the worker's interpreter unless it runs already, with the same `home`.
pub fn ensure_started(home: Option<&Path>) -> Result<(), StartError> {
    let mut started = STARTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(started) = &*started {
        if started.as_deref() != home {
            return Err(StartError::OtherHome {
                started: describe_home(started.as_deref()),
                wanted: describe_home(home),
            });
        }
        return Ok(());
    }
    promote_libpython()?;
    start(home)?;
    *started = Some(home.map(Path::to_path_buf));
    Ok(())
}

/// nginx opens app libraries RTLD_LOCAL, so the libpython we link comes in local too, and a C
/// extension (which links no libpython) finds none of Python's symbols: reopening it
/// RTLD_GLOBAL, as mod_wsgi gets by being linked into Apache, makes them visible.
fn promote_libpython() -> Result<(), StartError> {
    let mut info = MaybeUninit::<libc::Dl_info>::uninit();
    let symbol = ffi::Py_IsInitialized as *const c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(symbol, info.as_mut_ptr()) } == 0 {
        return Err(StartError::Global(
            "dladdr found no library for Py_IsInitialized".into(),
        ));
    }
    // SAFETY: dladdr succeeded, so it filled `info`; dli_fname is the library's path, valid
    // while the library is loaded.
    let path = unsafe { info.assume_init().dli_fname };
    // SAFETY: RTLD_NOLOAD only changes the flags of the loaded library; the handle is kept
    // (never closed), which also keeps libpython loaded as long as the worker.
    let handle =
        unsafe { libc::dlopen(path, libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        // SAFETY: dlerror returns the last error as a C string, or null.
        let error = unsafe { libc::dlerror() };
        let message = if error.is_null() {
            "dlopen failed".into()
        } else {
            // SAFETY: non-null, a C string owned by libc until the next dl call.
            unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(StartError::Global(message));
    }
    Ok(())
}

fn status_error(status: ffi::PyStatus) -> Option<StartError> {
    // SAFETY: a status returned by Python's init functions.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return None;
    }
    let text = |ptr: *const std::ffi::c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: Python's static C strings.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    };
    Some(StartError::Init(format!(
        "{}: {}",
        text(status.func),
        text(status.err_msg)
    )))
}

/// Frees a PyConfig's strings however init ends.
struct Config(ffi::PyConfig);

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: initialised by PyConfig_InitIsolatedConfig, cleared once.
        unsafe { ffi::PyConfig_Clear(&mut self.0) };
    }
}

impl Config {
    fn set(
        &mut self,
        field: fn(&mut ffi::PyConfig) -> &mut *mut libc::wchar_t,
        value: &Path,
    ) -> Result<(), StartError> {
        let value = CString::new(value.as_os_str().as_bytes())
            .map_err(|_| StartError::Init(format!("{} has a NUL byte", value.display())))?;
        let config: *mut ffi::PyConfig = &mut self.0;
        // SAFETY: `config` is initialised and the field is one of its strings; Python copies
        // (decodes) the value.
        let status =
            unsafe { ffi::PyConfig_SetBytesString(config, field(&mut *config), value.as_ptr()) };
        status_error(status).map_or(Ok(()), Err)
    }
}

/// PYTHONMALLOC's names (CPython's PyMemAllocatorName, Include/cpython/pymem.h).
const ALLOCATORS: [(&str, libc::c_int); 6] = [
    ("default", 1),
    ("debug", 2),
    ("malloc", 3),
    ("malloc_debug", 4),
    ("pymalloc", 5),
    ("pymalloc_debug", 6),
];

/// The allocator named by PYTHONMALLOC, the one PYTHON* variable honoured: it changes how
/// Python allocates, not what an app does, and a memory checker (valgrind) needs `malloc`.
/// nginx gives a worker only the variables of its `env` directives, so it takes
/// `env PYTHONMALLOC;` in nginx.conf. 0 (PYMEM_ALLOCATOR_NOT_SET) leaves Python's default.
fn allocator() -> Result<libc::c_int, StartError> {
    let Some(name) = std::env::var_os("PYTHONMALLOC").filter(|name| !name.is_empty()) else {
        return Ok(0);
    };
    ALLOCATORS
        .iter()
        .find(|(known, _)| name == *known)
        .map(|&(_, allocator)| allocator)
        .ok_or_else(|| {
            StartError::Init(format!(
                "PYTHONMALLOC={} is not one of {}",
                name.to_string_lossy(),
                ALLOCATORS.map(|(known, _)| known).join(", ")
            ))
        })
}

/// Starts Python isolated from nginx's environment (PYTHON* variables but PYTHONMALLOC, and
/// the user's site directory, are the shell's, not the app's), in UTF-8 mode, leaving
/// nginx's signals alone.
fn start(home: Option<&Path>) -> Result<(), StartError> {
    let mut preconfig = MaybeUninit::<ffi::PyPreConfig>::uninit();
    // SAFETY: the function fills the whole struct.
    let mut preconfig = unsafe {
        ffi::PyPreConfig_InitIsolatedConfig(preconfig.as_mut_ptr());
        preconfig.assume_init()
    };
    preconfig.utf8_mode = 1;
    preconfig.allocator = allocator()?;
    // SAFETY: a filled preconfig; Python is not initialised yet (STARTED says so).
    if let Some(error) = status_error(unsafe { ffi::Py_PreInitialize(&preconfig) }) {
        return Err(error);
    }

    let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: the function fills the whole struct, which `Config` then owns and clears.
    let mut config = Config(unsafe {
        ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        config.assume_init()
    });
    config.0.install_signal_handlers = 0;
    config.0.configure_c_stdio = 0;
    config.0.parse_argv = 0;
    config.0.site_import = 1;
    match home {
        // A venv is found by its pyvenv.cfg next to the interpreter's path, as when its
        // bin/python runs (mod_wsgi does the same); its `home =` line leads to the stdlib.
        Some(home) if home.join("pyvenv.cfg").is_file() => {
            let python = home.join("bin").join("python3");
            config.set(|c| &mut c.program_name, &python)?;
            config.set(|c| &mut c.executable, &python)?;
        }
        Some(home) => config.set(|c| &mut c.home, home)?,
        None => config.set(|c| &mut c.program_name, Path::new(BUILT_PYTHON))?,
    }
    // SAFETY: a filled config; on success this thread holds the GIL with the main thread
    // state, released just below so that any thread may attach.
    if let Some(error) = status_error(unsafe { ffi::Py_InitializeFromConfig(&config.0) }) {
        return Err(error);
    }
    drop(config);
    Python::attach(|py| {
        // The threading module takes the thread that first imports it for the main thread.
        py.import("threading").map(drop)
    })
    .map_err(|error| StartError::Init(error.to_string()))?;
    // SAFETY: this thread holds the GIL since Py_InitializeFromConfig; the saved state stays
    // Python's (the main thread's), which attaching on this thread finds again.
    unsafe { ffi::PyEval_SaveThread() };
    Ok(())
}

/// Puts the location's paths first on `sys.path`, imports its module and finds the callable.
pub fn load_app(py: Python<'_>, params: &Params) -> Result<Py<PyAny>, LoadError> {
    let target = format!("{}:{}", params.module, params.callable);
    let import_error = |error: PyErr| LoadError::Import {
        target: target.clone(),
        traceback: python_error_text(py, &error),
    };
    let sys_path = py
        .import("sys")
        .and_then(|sys| sys.getattr("path"))
        .and_then(|path| path.cast_into::<PyList>().map_err(PyErr::from))
        .map_err(import_error)?;
    for path in params.paths.iter().rev() {
        let path = path.to_string_lossy();
        if !sys_path.contains(&*path).map_err(import_error)? {
            sys_path.insert(0, &*path).map_err(import_error)?;
        }
    }
    let mut app = py.import(&*params.module).map_err(import_error)?.into_any();
    for name in params.callable.split('.') {
        app = app.getattr(name).map_err(import_error)?;
    }
    if !app.is_callable() {
        return Err(LoadError::NotCallable(target));
    }
    Ok(app.unbind())
}
