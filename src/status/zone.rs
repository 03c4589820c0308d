//! `gateway_status_zone NAME SIZE;`: the shared-memory zone that holds the counters table,
//! set up by the master before the workers fork, and kept across reloads.

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_int_t, ngx_parse_size, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::ngx_conf_log_error;

use super::counters::{MountCounters, Name, PoolCounters, Table, LAYOUT, NAME_LEN};
use crate::conf::MainConf;
use crate::panic_guard::guard;

/// `gateway_status_zone NAME SIZE;`: keep counters in the shared memory zone NAME.
pub unsafe extern "C" fn set_status_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid `cf` while parsing.
    let log = unsafe { (*cf).log };
    guard(log, "gateway_status_zone", NGX_CONF_ERROR, || {
        // SAFETY: `conf` is this module's main configuration (NGX_HTTP_MAIN_CONF_OFFSET).
        let main = unsafe { &mut *conf.cast::<MainConf>() };
        if main.status_zone.is_some() {
            return c"is duplicate".as_ptr().cast_mut();
        }
        // SAFETY: NGX_CONF_TAKE2: args are [name, zone name, size].
        let args = unsafe { (*(*cf).args).as_slice::<ngx_str_t>() };
        let (mut name, mut size_text) = (args[1], args[2]);
        // SAFETY: a configuration string, only read.
        let size = unsafe { ngx_parse_size(&mut size_text) };
        if size == NGX_ERROR as isize {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_status_zone: invalid size \"{}\"",
                String::from_utf8_lossy(size_text.as_bytes())
            );
            return NGX_CONF_ERROR;
        }
        let needed = 2 * std::mem::size_of::<Table>() + 8 * 4096;
        if size < needed as isize {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "gateway_status_zone \"{}\" needs a size of at least {}k",
                String::from_utf8_lossy(name.as_bytes()),
                needed.div_ceil(1024)
            );
            return NGX_CONF_ERROR;
        }
        let tag = std::ptr::addr_of!(crate::ngx_http_gateway_module)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: called while parsing; nginx owns the zone and maps it before the workers fork.
        let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size as usize, tag) };
        let Some(mut zone) = NonNull::new(zone) else {
            return NGX_CONF_ERROR;
        };
        // SAFETY: the zone was just added; its data and init are ours to set.
        unsafe {
            let zone = zone.as_mut();
            if !zone.data.is_null() {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "gateway_status_zone: the zone name is used by another zone"
                );
                return NGX_CONF_ERROR;
            }
            zone.data = (main as *mut MainConf).cast();
            zone.init = Some(init_zone);
        }
        main.status_zone = Some(zone);
        NGX_CONF_OK
    })
}

/// Sets up the zone's table (or keeps the one the previous configuration used) and points every
/// mount of this configuration at its own entry and its pool's; runs in the master, before the
/// workers fork.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, previous: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the zone being set up; its data is this configuration's MainConf.
    let zone = unsafe { &mut *zone };
    let log = zone.shm.log;
    guard(log, "status zone", NGX_ERROR as ngx_int_t, || {
        // SAFETY: `data` was set to the MainConf in `set_status_zone`, alive with the cycle.
        let main = unsafe { &*zone.data.cast::<MainConf>() };
        // SAFETY: on a reload, `previous` is the old configuration's MainConf, still alive.
        let kept = unsafe { previous.cast::<MainConf>().as_ref() }
            .and_then(|previous| previous.status_table.get())
            // SAFETY: the old table lives in this same zone, mapped at the same address.
            .filter(|table| unsafe { table.as_ref() }.layout == LAYOUT);
        let table = match kept {
            Some(table) => table,
            None => {
                let slab = zone.shm.addr.cast::<ngx_slab_pool_t>();
                // SAFETY: the zone's memory starts with its slab pool; zeroed memory is a valid
                // table (atomics and names start at zero).
                let table =
                    unsafe { ngx_slab_calloc(slab, std::mem::size_of::<Table>()) }.cast::<Table>();
                let Some(mut table) = NonNull::new(table) else {
                    return NGX_ERROR as ngx_int_t;
                };
                // SAFETY: fresh, zeroed and ours.
                unsafe { table.as_mut().layout = LAYOUT };
                table
            }
        };
        main.status_table.set(Some(table));
        // SAFETY: the master is the only process running; workers fork after this.
        let table = unsafe { &mut *table.as_ptr() };
        for &mount in &main.mounts {
            // SAFETY: mounts are location configurations of this cycle.
            let mount = unsafe { &*mount };
            if let Some(app) = &mount.app {
                let names = [app.name().as_bytes(), &mount.location_name];
                mount.counters.app.set(entry(&mut table.mounts, names));
            }
            if let Some(pool) = &mount.thread_pool_name {
                mount.counters.pool.set(entry(&mut table.pools, [pool]));
            }
        }
        NGX_OK as ngx_int_t
    })
}

/// Entries found by their names: a mount by its app and location, a pool by its name.
trait Named<const N: usize> {
    fn names(&self) -> [&Name; N];
    fn names_mut(&mut self) -> [&mut Name; N];
}

impl Named<2> for MountCounters {
    fn names(&self) -> [&Name; 2] {
        [&self.app, &self.location]
    }
    fn names_mut(&mut self) -> [&mut Name; 2] {
        [&mut self.app, &mut self.location]
    }
}

impl Named<1> for PoolCounters {
    fn names(&self) -> [&Name; 1] {
        [&self.name]
    }
    fn names_mut(&mut self) -> [&mut Name; 1] {
        [&mut self.name]
    }
}

/// The entry with these names, claiming a free one if needed; `None` when the table is full.
fn entry<T: Named<N>, const N: usize>(entries: &mut [T], names: [&[u8]; N]) -> Option<NonNull<T>> {
    let names = names.map(|name| &name[..name.len().min(NAME_LEN)]);
    let is = |entry: &T, wanted: [&[u8]; N]| {
        entry
            .names()
            .iter()
            .zip(wanted)
            .all(|(have, want)| have.get() == want)
    };
    let index = entries
        .iter()
        .position(|entry| is(entry, names))
        .or_else(|| {
            entries
                .iter()
                .position(|entry| entry.names()[0].get().is_empty())
        })?;
    let entry = &mut entries[index];
    if entry.names()[0].get().is_empty() {
        for (name, value) in entry.names_mut().into_iter().zip(names) {
            name.set(value);
        }
    }
    Some(NonNull::from(entry))
}
