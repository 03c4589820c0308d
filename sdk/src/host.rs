//! The module's function table, read field by field: the table of a module of an older minor
//! is shorter (1.0 ends at `fail`), so the SDK never makes a `&abi::Host` that would claim the
//! whole current layout, and reads an appended field only when the module's minor has it.

use crate::abi;

/// The module's [`abi::Host`] table.
#[derive(Clone, Copy)]
pub(crate) struct Host(*const abi::Host);

// SAFETY: the table is an immutable static of the module, and the ABI makes its functions
// callable from any thread.
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

/// [`abi::Host::log`]'s type.
pub(crate) type LogFn = unsafe extern "C" fn(call: *mut abi::Call, level: u32, message: abi::Bytes);

impl Host {
    /// # Safety
    /// `table` must be the module's host table, as passed in a `Setup` or a `Request`.
    pub unsafe fn new(table: *const abi::Host) -> Self {
        Host(table)
    }

    /// The module's [`abi::ABI_MINOR`].
    pub fn minor(self) -> u32 {
        // SAFETY: every minor's table starts with `abi_minor`.
        unsafe { (*self.0).abi_minor }
    }

    /// [`abi::Host::respond`].
    ///
    /// # Safety
    /// As the ABI requires of `respond`.
    pub unsafe fn respond(self, call: *mut abi::Call, response: *const abi::Response) {
        // SAFETY: `respond` is in every minor's table; the caller keeps the ABI's contract.
        unsafe { ((*self.0).respond)(call, response) }
    }

    /// [`abi::Host::fail`].
    ///
    /// # Safety
    /// As the ABI requires of `fail`.
    pub unsafe fn fail(self, call: *mut abi::Call, cause: u32, message: &[u8]) {
        // SAFETY: `fail` is in every minor's table; the module copies the message.
        unsafe { ((*self.0).fail)(call, cause, abi::Bytes::new(message)) }
    }

    /// [`abi::Host::wake`].
    ///
    /// # Safety
    /// As the ABI requires of `wake`, with a module of minor 1 or later.
    #[cfg(feature = "tower")]
    pub unsafe fn wake(self, call: *mut abi::Call) {
        // SAFETY: the caller checked the minor, so the table has `wake`.
        unsafe { ((*self.0).wake)(call) }
    }

    /// [`abi::Host::log`]; `None` for a module of ABI 1.0, whose table ends before it.
    pub fn log_fn(self) -> Option<LogFn> {
        // SAFETY: a module of minor 1 or later has a table with `log`.
        (self.minor() >= 1).then(|| unsafe { (*self.0).log })
    }
}
