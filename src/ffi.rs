//! The only room with `unsafe`: ulogd's ABI (bindgen over `c-shim/`), the
//! panic boundary, key reading, host logging and fd registration.
//!
//! Every `extern "C"` entry has the same shape, `entry`: inside it, a NULL
//! check and a borrow (`state`, `take_state`), a call of a safe function of
//! `plugin`, and a `Result<(), Failure>` that `entry` turns into a ulogd
//! return code (and an ERROR line) in one place, with `catch_unwind` around
//! all of it. The invariants relied on are written in SAFETY.md.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::{ErrorKind, Read, Write};
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use crate::plugin::{HostLog, Instance};
use crate::sink::{Level, Waker};
use masqlog_core::config::RawValue;
use masqlog_core::keys::{CONF_KEYS, ConfKind, INPUT_KEYS};
use masqlog_core::record::{RawConntrack, Timestamp};

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use bindings::{
    config_entry, config_keyset, ulogd_fd, ulogd_key, ulogd_plugin, ulogd_pluginstance,
    ulogd_pluginstance_stack,
};

// The layouts of shared/ulogd-abi.md (x86_64, ulogd 2.0.5 .. 2.0.9).
const _: () = {
    assert!(size_of::<ulogd_key>() == 72);
    assert!(offset_of!(ulogd_key, type_) == 4);
    assert!(offset_of!(ulogd_key, flags) == 6);
    assert!(offset_of!(ulogd_key, name) == 8);
    assert!(offset_of!(ulogd_key, u) == 56);
    assert!(size_of::<bindings::ulogd_keyset>() == 16);
    assert!(size_of::<ulogd_plugin>() == 152);
    assert!(offset_of!(ulogd_plugin, version) == 16);
    assert!(offset_of!(ulogd_plugin, name) == 24);
    assert!(offset_of!(ulogd_plugin, input) == 64);
    assert!(offset_of!(ulogd_plugin, interp) == 96);
    assert!(offset_of!(ulogd_plugin, signal) == 128);
    assert!(offset_of!(ulogd_plugin, config_kset) == 136);
    assert!(offset_of!(ulogd_plugin, priv_size) == 144);
    assert!(size_of::<ulogd_pluginstance>() == 120);
    assert!(offset_of!(ulogd_pluginstance, id) == 48);
    assert!(offset_of!(ulogd_pluginstance, input) == 80);
    assert!(offset_of!(ulogd_pluginstance, config_kset) == 112);
    assert!(offset_of!(ulogd_pluginstance, private) == 120);
    assert!(size_of::<ulogd_fd>() == 40);
    assert!(offset_of!(ulogd_fd, fd) == 16);
    assert!(offset_of!(ulogd_fd, cb) == 24);
    assert!(offset_of!(ulogd_fd, data) == 32);
    assert!(size_of::<config_entry>() == 272);
    assert!(offset_of!(config_entry, u) == 40);
    assert!(offset_of!(config_keyset, ces) == 8);
};

const IRET_OK: c_int = bindings::ULOGD_IRET_OK as c_int;
const IRET_ERR: c_int = bindings::ULOGD_IRET_ERR;

/// The ulogd versions whose struct layouts this build matches. The build's
/// own (`ulogd -V` at build time) is tried first.
const KNOWN_VERSIONS: &[&CStr] = &[c"2.0.9", c"2.0.8", c"2.0.7", c"2.0.6", c"2.0.5"];
const BUILD_VERSION: &str = env!("MASQLOG_ULOGD_VERSION");

/// ulogd's only thread: the one that loaded the plugin.
static HOST_THREAD: OnceLock<ThreadId> = OnceLock::new();

thread_local! {
    /// The last panic's message and location on this thread, for the boundary.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn level_number(level: Level) -> c_int {
    (match level {
        Level::Info => bindings::ULOGD_INFO,
        Level::Notice => bindings::ULOGD_NOTICE,
        Level::Error => bindings::ULOGD_ERROR,
    }) as c_int
}

/// Logs through ulogd with a fixed "%s" format; only on ulogd's thread.
fn host_log(level: c_int, msg: &str) {
    if HOST_THREAD
        .get()
        .is_some_and(|t| *t != std::thread::current().id())
    {
        // Never call ulogd from another thread: it is not thread-safe.
        return;
    }
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: both strings are valid NUL-terminated C strings that outlive the
    // call; the shim passes `msg` as an argument of a "%s\n" format, and we are
    // on ulogd's thread (checked above).
    unsafe { bindings::masqlog_shim_log(level, c"MASQLOG".as_ptr(), msg.as_ptr()) };
}

/// ulogd's log, for the safe instance code.
struct UlogdLog;

impl HostLog for UlogdLog {
    fn log(&self, level: Level, msg: &str) {
        host_log(level_number(level), msg);
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic".to_string()
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
    }));
}

/// Why an entry returns ulogd's error code: with the line that says why
/// (logged at ERROR), or without one when there is nothing to add.
struct Failure(Option<String>);

impl Failure {
    /// A failure without a line of its own (a NULL pointer from ulogd, a
    /// callback before `configure`).
    const QUIET: Failure = Failure(None);

    /// A failure of instance `id`: `MASQLOG[id]: why`.
    fn of(id: &str, why: impl std::fmt::Display) -> Failure {
        Failure(Some(format!("MASQLOG[{id}]: {why}")))
    }
}

/// What an entry returns to ulogd on success and on failure.
trait Return {
    const OK: Self;
    const ERR: Self;
}

impl Return for c_int {
    const OK: c_int = IRET_OK;
    const ERR: c_int = IRET_ERR;
}

impl Return for () {
    const OK: () = ();
    const ERR: () = ();
}

/// The shape of every `extern "C"` entry (SAFETY.md 9): runs `body` inside
/// `catch_unwind` and maps its outcome to ulogd's return code, logging a
/// failure's line at ERROR. A panic becomes `R::ERR` and one ERROR line with
/// its message and location; it never unwinds into ulogd.
fn entry<R: Return>(what: &str, body: impl FnOnce() -> Result<(), Failure>) -> R {
    let outcome = catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(()) => R::OK,
        Err(Failure(line)) => {
            if let Some(line) = line {
                host_log(bindings::ULOGD_ERROR as c_int, &line);
            }
            R::ERR
        }
    }));
    outcome.unwrap_or_else(|_| {
        let detail = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "unknown panic".into());
        host_log(
            bindings::ULOGD_ERROR as c_int,
            &format!("MASQLOG: internal error in {what}: {detail}"),
        );
        R::ERR
    })
}

/// What the private area owns from `configure` to `stop`.
struct State {
    instance: Instance,
    fd: Option<Box<ulogd_fd>>,
    wake_rx: Option<UnixStream>,
}

/// The instance slot in ulogd's private area.
///
/// # Safety
/// `pi` points at a live instance of this plugin (priv_size = 8, zeroed by
/// ulogd, 8-byte aligned).
unsafe fn slot(pi: *mut ulogd_pluginstance) -> *mut *mut State {
    // SAFETY: the private area of this plugin's instances is 8 bytes, 8-byte
    // aligned (header of 120 bytes from calloc), holding one pointer.
    unsafe { (&raw mut (*pi).private).cast::<*mut State>() }
}

/// NULL check: the State in `pi`'s private area. `Err` for a NULL `pi`;
/// `Ok(None)` before `configure` and after `stop`.
///
/// # Safety
/// `pi` is NULL or a live instance of this plugin (SAFETY.md 3).
unsafe fn state_ptr(pi: *mut ulogd_pluginstance) -> Result<Option<NonNull<State>>, Failure> {
    if pi.is_null() {
        return Err(Failure::QUIET);
    }
    // SAFETY: `pi` is a live instance of this plugin (contract, checked for
    // NULL above); its slot holds NULL or the State that configure boxed.
    Ok(NonNull::new(unsafe { *slot(pi) }))
}

/// NULL check and borrow: `state_ptr` as a reference.
///
/// # Safety
/// As for `state_ptr`; besides, the caller is one of ulogd's callbacks for
/// `pi` and drops the reference before it returns.
unsafe fn state<'a>(pi: *mut ulogd_pluginstance) -> Result<Option<&'a mut State>, Failure> {
    // SAFETY: per the contract.
    let state = unsafe { state_ptr(pi) }?;
    // SAFETY: the State was boxed by configure and is freed only by stop;
    // ulogd calls one callback at a time on its only thread (SAFETY.md 2),
    // so no other reference to it is live while this one is.
    Ok(state.map(|p| unsafe { &mut *p.as_ptr() }))
}

/// NULL check and taking back: the State out of `pi`'s private area,
/// leaving NULL, so that it is freed exactly once and later callbacks see
/// "not configured".
///
/// # Safety
/// `pi` is NULL or a live instance of this plugin (SAFETY.md 3).
unsafe fn take_state(pi: *mut ulogd_pluginstance) -> Result<Option<Box<State>>, Failure> {
    if pi.is_null() {
        return Err(Failure::QUIET);
    }
    // SAFETY: `pi` is a live instance of this plugin (contract, checked for
    // NULL above), so its slot is ours to write.
    let state = unsafe { std::mem::replace(&mut *slot(pi), std::ptr::null_mut()) };
    // SAFETY: a non-NULL slot holds what `Box::into_raw` made in configure;
    // the slot no longer has it, so this Box is its only owner.
    Ok(NonNull::new(state).map(|p| unsafe { Box::from_raw(p.as_ptr()) }))
}

/// Puts a configured State into `pi`'s private area, freeing the one a
/// previous `configure` left.
///
/// # Safety
/// `pi` is a live instance of this plugin (SAFETY.md 3), not started.
unsafe fn put_state(pi: *mut ulogd_pluginstance, state: Box<State>) {
    // SAFETY: the slot is ours (contract); a non-NULL value in it is what
    // `Box::into_raw` made in an earlier configure, freed here once; no fd
    // points at it, since the instance was not started.
    unsafe {
        let slot = slot(pi);
        if !(*slot).is_null() {
            drop(Box::from_raw(*slot));
        }
        *slot = Box::into_raw(state);
    }
}

/// Registration, from the shim's ELF constructor: try the build's ulogd
/// version, then every other known one; say clearly when none is accepted.
#[unsafe(no_mangle)]
pub extern "C" fn masqlog_rs_register() {
    entry("register", || {
        let _ = HOST_THREAD.set(std::thread::current().id());
        install_panic_hook();
        register()
    })
}

/// Offers the plugin under each candidate version until ulogd links it;
/// the line that says so when it refuses every one.
fn register() -> Result<(), Failure> {
    // SAFETY: the shim returns the address of its static plugin, valid for
    // the life of the library.
    let plugin = unsafe { bindings::masqlog_shim_plugin() };
    let build = CString::new(BUILD_VERSION).unwrap_or_default();
    let build: &'static CStr = Box::leak(build.into_boxed_c_str());
    let mut candidates = vec![build];
    candidates.extend(KNOWN_VERSIONS.iter().copied().filter(|v| *v != build));
    for v in &candidates {
        // SAFETY: `plugin` is the shim's writable static; ulogd has not
        // linked it (no try was accepted yet), so nothing else reads it
        // now; `v` is a 'static C string (SAFETY.md 7).
        let accepted = unsafe {
            (*plugin).version = v.as_ptr().cast_mut();
            bindings::masqlog_shim_register(plugin)
        };
        if accepted == 1 {
            return Ok(());
        }
    }
    let tried: Vec<&str> = candidates.iter().filter_map(|v| v.to_str().ok()).collect();
    Err(Failure(Some(format!(
        "MASQLOG: this ulogd refused the plugin for every ulogd version it supports ({}); \
         it was built for {}; check `ulogd -V` and rebuild with \
         `MASQLOG_ULOGD_VERSION=<that version> cargo build --release` \
         (the struct layouts must be those of ulogd 2.0.5 .. 2.0.9)",
        tried.join(", "),
        BUILD_VERSION
    ))))
}

/// The instance's id (`[section]` name).
///
/// # Safety
/// `pi` points at a live ulogd instance.
unsafe fn instance_id(pi: *const ulogd_pluginstance) -> String {
    // SAFETY: per the contract `pi` is live; `id` is a fixed array that ulogd
    // NUL-terminates (ids are at most 30 characters).
    fixed_str(unsafe { &(*pi).id })
}

/// Reads the instance's config copy after ulogd parsed the section.
///
/// # Safety
/// `kset` points at the instance's config keyset copy, made from the shim's
/// keyset, so it has exactly `CONF_KEYS.len()` entries in that order.
unsafe fn read_config(kset: *const config_keyset) -> Result<Vec<RawValue>, String> {
    // SAFETY: per the contract the keyset is live and has num_ces entries.
    let n = unsafe { (*kset).num_ces } as usize;
    if n != CONF_KEYS.len() {
        return Err(format!(
            "config keyset has {n} keys, expected {}",
            CONF_KEYS.len()
        ));
    }
    // SAFETY: `ces` is a flexible array of `n` entries (above).
    let ces = unsafe { std::slice::from_raw_parts((*kset).ces.as_ptr(), n) };
    let mut out = Vec::with_capacity(n);
    for (ce, def) in ces.iter().zip(CONF_KEYS) {
        let key = fixed_str(&ce.key);
        if key != def.name {
            return Err(format!(
                "config key {key:?} where {:?} was expected",
                def.name
            ));
        }
        out.push(match def.kind {
            // SAFETY: the entry is CONFIG_TYPE_STRING, so ulogd keeps the
            // value in `u.string` (225 bytes, NUL-terminated by ulogd).
            ConfKind::Str => RawValue::Str(fixed_str(unsafe { &ce.u.string })),
            // SAFETY: the entry is CONFIG_TYPE_INT: the value is `u.value`.
            ConfKind::Int => RawValue::Int(i64::from(unsafe { ce.u.value })),
        });
    }
    Ok(out)
}

/// A NUL-terminated string in a fixed C array (to the first NUL or the end).
fn fixed_str(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// # Safety
/// Called by ulogd only, on its thread, with `pi` NULL or a live instance of
/// this plugin (see SAFETY.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn masqlog_rs_configure(
    pi: *mut ulogd_pluginstance,
    _stack: *mut ulogd_pluginstance_stack,
) -> c_int {
    entry("configure", || {
        if pi.is_null() {
            return Err(Failure::QUIET);
        }
        // SAFETY: ulogd passes a live instance of this plugin, not started
        // yet (checked for NULL above).
        let state = unsafe { configure(pi) }?;
        // SAFETY: as above.
        unsafe { put_state(pi, state) };
        Ok(())
    })
}

/// Has ulogd read the instance's `[id]` section into its config copy, and
/// makes the instance of the values.
///
/// # Safety
/// `pi` is a live instance of this plugin (SAFETY.md 3, 5).
unsafe fn configure(pi: *mut ulogd_pluginstance) -> Result<Box<State>, Failure> {
    // SAFETY: `pi` is live (contract).
    let id = unsafe { instance_id(pi) };
    let cid = CString::new(id.clone()).unwrap_or_default();
    // SAFETY: `pi` is live; its config keyset copy is live and writable.
    let kset = unsafe { (*pi).config_kset };
    if kset.is_null() {
        return Err(Failure::QUIET);
    }
    // SAFETY: `kset` is the instance's own copy and `cid` outlives the call;
    // config_parse_file writes only into `kset`.
    let rc = unsafe { bindings::masqlog_shim_config_parse(cid.as_ptr(), kset) };
    if rc == -6 {
        host_log(
            bindings::ULOGD_NOTICE as c_int,
            &format!("MASQLOG[{id}]: no [{id}] section in the config file: using the defaults"),
        );
    } else if rc < 0 {
        return Err(Failure::of(
            &id,
            format!(
                "cannot read section [{id}] (config_parse_file error {rc}; -7: a value of 225 characters or more, a line over 254 bytes, or no newline at the end of the file)"
            ),
        ));
    }
    // SAFETY: `kset` is this instance's copy of the shim's keyset.
    let values = unsafe { read_config(kset) }.map_err(|e| Failure::of(&id, e))?;
    let instance = Instance::configure(&id, &values).map_err(|e| Failure::of(&id, e))?;
    Ok(Box::new(State {
        instance,
        fd: None,
        wake_rx: None,
    }))
}

/// Wakes ulogd's main thread through a socket pair registered with ulogd.
struct SocketWaker(UnixStream);

impl Waker for SocketWaker {
    fn wake(&self) {
        // One pending byte is enough: WouldBlock means a wake-up is queued.
        match (&self.0).write(&[1]) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {}
        }
    }
}

/// ulogd's select loop ignores what an fd callback returns: always 0.
unsafe extern "C" fn fd_callback(_fd: c_int, _what: c_uint, data: *mut c_void) -> c_int {
    entry::<()>("fd callback", || {
        let state = NonNull::new(data.cast::<State>()).ok_or(Failure::QUIET)?;
        // SAFETY: `data` is the State that registered this fd; it stays
        // allocated until `stop` unregisters the fd (SAFETY.md 6); ulogd calls
        // us on its thread only, so this is the only reference.
        let state = unsafe { &mut *state.as_ptr() };
        if let Some(rx) = &state.wake_rx {
            let mut buf = [0u8; 256];
            while let Ok(n) = (&*rx).read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
        state.instance.on_wake(&UlogdLog);
        Ok(())
    });
    0
}

/// # Safety
/// Called by ulogd only, on its thread, with `pi` NULL or a live instance of
/// this plugin (see SAFETY.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn masqlog_rs_start(pi: *mut ulogd_pluginstance) -> c_int {
    entry("start", || {
        // SAFETY: ulogd passes NULL or a live instance of this plugin.
        let state = unsafe { state_ptr(pi) }?.ok_or(Failure::QUIET)?;
        // SAFETY: `state` is the State in the instance's slot, and this is
        // one of ulogd's callbacks.
        unsafe { start(state) }
    })
}

/// Starts the instance and has ulogd watch the socket its threads wake the
/// main thread through.
///
/// # Safety
/// `state` is the State in a live instance's slot; the caller is one of
/// ulogd's callbacks, so no other reference to it is live.
unsafe fn start(state: NonNull<State>) -> Result<(), Failure> {
    // SAFETY: per the contract. The fd's `data` below is `state` itself, not
    // a pointer derived from this reference, so it stays valid after it.
    let st = unsafe { &mut *state.as_ptr() };
    let id = st.instance.id().to_string();
    let (tx, rx) = UnixStream::pair()
        .map_err(|e| Failure::of(&id, format!("cannot create the wake-up socket pair: {e}")))?;
    if tx.set_nonblocking(true).is_err() || rx.set_nonblocking(true).is_err() {
        return Err(Failure::QUIET);
    }
    if rx.as_raw_fd() >= 1024 {
        return Err(Failure::of(
            &id,
            format!(
                "wake-up fd {} is beyond select()'s limit of 1024",
                rx.as_raw_fd()
            ),
        ));
    }
    st.instance
        .start(Arc::new(SocketWaker(tx)), &UlogdLog)
        .map_err(|e| Failure::of(&id, e))?;
    let mut ufd = Box::new(ulogd_fd {
        list: bindings::llist_head {
            next: std::ptr::null_mut(),
            prev: std::ptr::null_mut(),
        },
        fd: rx.as_raw_fd(),
        when: bindings::ULOGD_FD_READ,
        cb: Some(fd_callback),
        data: state.as_ptr().cast(),
    });
    // SAFETY: `ufd` is boxed and kept in the State until stop unregisters
    // it, so ulogd's list never points at freed memory (SAFETY.md 6).
    let rc = unsafe { bindings::masqlog_shim_register_fd(&mut *ufd) };
    if rc < 0 {
        // Said before the instance's own stop lines.
        host_log(
            bindings::ULOGD_ERROR as c_int,
            &format!("MASQLOG[{id}]: ulogd refused to watch the wake-up fd"),
        );
        st.instance.stop(&UlogdLog);
        return Err(Failure::QUIET);
    }
    st.fd = Some(ufd);
    st.wake_rx = Some(rx);
    Ok(())
}

/// # Safety
/// Called by ulogd only, on its thread, with `pi` NULL or a live instance of
/// this plugin (see SAFETY.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn masqlog_rs_stop(pi: *mut ulogd_pluginstance) -> c_int {
    entry("stop", || {
        // SAFETY: ulogd passes NULL or a live instance of this plugin.
        if let Some(state) = unsafe { take_state(pi) }? {
            stop(state);
        }
        Ok(())
    })
}

/// Unregisters the fd before the State it points at is freed, then stops
/// the instance. No input key is touched (SAFETY.md 4).
fn stop(mut state: Box<State>) {
    if let Some(mut ufd) = state.fd.take() {
        // SAFETY: the fd was registered by start and is still in ulogd's
        // list; unregistering unlinks it before the box is freed.
        unsafe { bindings::masqlog_shim_unregister_fd(&mut *ufd) };
    }
    state.instance.stop(&UlogdLog);
}

/// # Safety
/// Called by ulogd only, on its thread, with `pi` NULL or a live instance of
/// this plugin (see SAFETY.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn masqlog_rs_signal(pi: *mut ulogd_pluginstance, sig: c_int) {
    entry("signal", || {
        // SAFETY: ulogd passes NULL or a live instance of this plugin, and
        // the reference ends with this callback.
        if let Some(state) = unsafe { state(pi) }? {
            state.instance.signal(sig, &UlogdLog);
        }
        Ok(())
    })
}

/// Where one input key's source value is, when it has one.
///
/// # Safety
/// `key` is one of the instance's input keys during `interp`.
unsafe fn source(key: &ulogd_key) -> Option<&ulogd_key> {
    // SAFETY: for input keys ulogd stores the upstream key in `u.source`
    // (NULL for an optional key that no upstream provides).
    let src = unsafe { key.u.source };
    if src.is_null() {
        return None;
    }
    // SAFETY: the upstream key lives as long as its instance, which outlives
    // this interp call.
    let src = unsafe { &*src };
    (u32::from(src.flags) & bindings::ULOGD_RETF_VALID != 0).then_some(src)
}

/// An integer value of any numeric key type.
fn read_uint(src: &ulogd_key) -> Option<u64> {
    let t = u32::from(src.type_);
    // SAFETY: the union member read is the one the key's type names
    // (ulogd's `ulogd_key_size` rules); all are plain integers.
    unsafe {
        let v = &src.u.value;
        Some(match t {
            bindings::ULOGD_RET_UINT8 | bindings::ULOGD_RET_BOOL => u64::from(v.ui8),
            bindings::ULOGD_RET_UINT16 => u64::from(v.ui16),
            bindings::ULOGD_RET_UINT32 => u64::from(v.ui32),
            bindings::ULOGD_RET_UINT64 => v.ui64,
            bindings::ULOGD_RET_INT8 => v.i8_ as u64,
            bindings::ULOGD_RET_INT16 => v.i16_ as u64,
            bindings::ULOGD_RET_INT32 => v.i32_ as u64,
            bindings::ULOGD_RET_INT64 => v.i64_ as u64,
            _ => return None,
        })
    }
}

/// An address key: IPv4 in `ui32` (network order), IPv6 in `ui128`.
fn read_addr(src: &ulogd_key, family: Option<u64>) -> Option<IpAddr> {
    let t = u32::from(src.type_);
    if t != bindings::ULOGD_RET_IPADDR && t != bindings::ULOGD_RET_IP6ADDR {
        return None;
    }
    // SAFETY: address keys keep the address inline in the value union; both
    // members are plain integers, valid for any bit pattern.
    let (v4, v6) = unsafe { (src.u.value.ui32, src.u.value.ui128) };
    match family {
        Some(10) => {
            let mut b = [0u8; 16];
            for (chunk, word) in b.chunks_exact_mut(4).zip(v6) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ if t == bindings::ULOGD_RET_IP6ADDR => None,
        Some(2) | None => Some(IpAddr::V4(Ipv4Addr::from(v4.to_ne_bytes()))),
        _ => None,
    }
}

/// Copies one NFCT event out of the instance's input keys.
///
/// # Safety
/// `pi` is a live instance of this plugin during `interp`.
unsafe fn read_event(pi: *const ulogd_pluginstance) -> Option<RawConntrack> {
    // SAFETY: the instance's input keyset is its copy of the shim's keys.
    let ks = unsafe { &(*pi).input };
    if ks.keys.is_null() || ks.num_keys as usize != INPUT_KEYS.len() {
        return None;
    }
    // SAFETY: `keys` has `num_keys` entries (checked above).
    let keys = unsafe { std::slice::from_raw_parts(ks.keys, ks.num_keys as usize) };
    // SAFETY: these are the instance's input keys during interp.
    let src = |i: usize| unsafe { source(&keys[i]) };
    let uint = |i: usize| src(i).and_then(read_uint);
    let family = uint(0);
    let addr = |i: usize| src(i).and_then(|k| read_addr(k, family));
    let u16_at = |i: usize| uint(i).and_then(|v| u16::try_from(v).ok());
    let u8_at = |i: usize| uint(i).and_then(|v| u8::try_from(v).ok());
    let u32_at = |i: usize| uint(i).and_then(|v| u32::try_from(v).ok());
    let time = |s: usize, us: usize| {
        uint(s).map(|secs| Timestamp::new(secs as i64, uint(us).unwrap_or(0) as u32))
    };
    Some(RawConntrack {
        orig_src: addr(1),
        orig_dst: addr(2),
        reply_src: addr(3),
        reply_dst: addr(4),
        protocol: u8_at(5),
        orig_sport: u16_at(6),
        orig_dport: u16_at(7),
        reply_sport: u16_at(8),
        reply_dport: u16_at(9),
        icmp_type: u8_at(10),
        icmp_code: u8_at(11),
        orig_bytes: uint(12),
        orig_packets: uint(13),
        reply_bytes: uint(14),
        reply_packets: uint(15),
        ct_id: u32_at(16),
        ct_event: u32_at(17),
        start: time(19, 20),
        end: time(21, 22),
    })
}

// The indices read_event uses, pinned to the names in keys.rs.
const _: () = {
    const fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(INPUT_KEYS.len() == 23);
    assert!(eq(INPUT_KEYS[0].name, "oob.family"));
    assert!(eq(INPUT_KEYS[1].name, "orig.ip.saddr"));
    assert!(eq(INPUT_KEYS[4].name, "reply.ip.daddr"));
    assert!(eq(INPUT_KEYS[5].name, "orig.ip.protocol"));
    assert!(eq(INPUT_KEYS[9].name, "reply.l4.dport"));
    assert!(eq(INPUT_KEYS[11].name, "icmp.code"));
    assert!(eq(INPUT_KEYS[12].name, "orig.raw.pktlen"));
    assert!(eq(INPUT_KEYS[15].name, "reply.raw.pktcount"));
    assert!(eq(INPUT_KEYS[16].name, "ct.id"));
    assert!(eq(INPUT_KEYS[17].name, "ct.event"));
    assert!(eq(INPUT_KEYS[19].name, "flow.start.sec"));
    assert!(eq(INPUT_KEYS[22].name, "flow.end.usec"));
};

/// # Safety
/// Called by ulogd only, on its thread, with `pi` NULL or a live instance of
/// this plugin (see SAFETY.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn masqlog_rs_interp(pi: *mut ulogd_pluginstance) -> c_int {
    entry("interp", || {
        // SAFETY: ulogd passes NULL or a live instance of this plugin, and
        // the reference ends with this callback. NFCT may call a sink whose
        // start failed: the State is then present but not started, and the
        // instance ignores the event.
        let Some(state) = unsafe { state(pi) }? else {
            return Ok(());
        };
        if !state.instance.started() {
            return Ok(());
        }
        // SAFETY: `pi` is live during interp (not NULL: checked by `state`).
        let raw = unsafe { read_event(pi) }.ok_or(Failure::QUIET)?;
        state.instance.interp(&raw, &UlogdLog);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_maps_the_outcome_to_ulogd_return_codes() {
        assert_eq!(entry::<c_int>("test", || Ok(())), IRET_OK);
        assert_eq!(entry::<c_int>("test", || Err(Failure::QUIET)), IRET_ERR);
        assert_eq!(
            entry::<c_int>("test", || Err(Failure::of("m1", "bad value"))),
            IRET_ERR
        );
        entry::<()>("test", || Err(Failure::QUIET));
    }

    #[test]
    fn a_panic_in_an_entry_is_the_error_code_not_an_unwind() {
        assert_eq!(
            entry::<c_int>("test", || panic!("bug in the body")),
            IRET_ERR
        );
        entry::<()>("test", || panic!("bug in the body"));
    }

    #[test]
    fn entries_given_null_do_not_touch_it() {
        let null = std::ptr::null_mut();
        // SAFETY: NULL is what these entries must accept from ulogd.
        unsafe {
            assert_eq!(masqlog_rs_configure(null, std::ptr::null_mut()), IRET_ERR);
            assert_eq!(masqlog_rs_start(null), IRET_ERR);
            assert_eq!(masqlog_rs_interp(null), IRET_ERR);
            assert_eq!(masqlog_rs_stop(null), IRET_ERR);
            masqlog_rs_signal(null, libc::SIGUSR1);
            assert_eq!(fd_callback(0, 0, std::ptr::null_mut()), 0);
        }
    }
}
